// Unit tests of the gateway's pure pieces: session tokens, consistency resolution, page
// tokens, the producer derivation, request field checks, metric labels, API key files,
// token buckets and the vector/metadata codec.
import { describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { isVecraftError } from "@vecraft/common";
import { MAX_TIMESTAMP } from "@vecraft/hlc";
import { Consistency, ReadConsistencySchema } from "@vecraft/rpc";
import { create } from "@bufbuild/protobuf";
import { KeyRing, parseApiKeys, presentedKey, sha256Hex } from "../src/auth.js";
import { bytesToVector, canonicalJson, metadataFromJson, vectorToBytes } from "../src/codec.js";
import { resolveConsistency } from "../src/consistency.js";
import { fieldKind } from "../src/metrics.js";
import {
  decodeHistoryPageToken,
  decodeOperationsPageToken,
  decodeQueryPageToken,
  encodeHistoryPageToken,
  encodeOperationsPageToken,
  encodeQueryPageToken,
} from "../src/page-token.js";
import { producerIdOf } from "../src/producer.js";
import { RateLimiter, TokenBucket } from "../src/rate-limit.js";
import { traceIdOf } from "../src/scope.js";
import { formatSessionToken, nextSessionToken, parseSessionToken } from "../src/session-token.js";
import { checkEf, checkIds, checkK, checkLimit, checkRequestId } from "../src/validate.js";

function invalid(fn: () => unknown, message: RegExp, code = Code.InvalidArgument): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(isVecraftError(thrown), `expected a VecraftError, got ${String(thrown)}`).toBe(true);
  if (isVecraftError(thrown)) {
    expect(thrown.code).toBe(code);
    expect(thrown.message).toMatch(message);
  }
}

describe("session tokens", () => {
  it("are the decimal text of a packed HLC timestamp, '' for none", () => {
    expect(parseSessionToken("")).toBe(0n);
    expect(parseSessionToken("0")).toBe(0n);
    expect(parseSessionToken("112233445566778899")).toBe(112233445566778899n);
    expect(parseSessionToken(MAX_TIMESTAMP.toString())).toBe(MAX_TIMESTAMP);
    expect(formatSessionToken(0n)).toBe("");
    expect(formatSessionToken(42n)).toBe("42");
    expect(nextSessionToken(10n, 7n)).toBe("10");
    expect(nextSessionToken(7n, 10n)).toBe("10");
    expect(nextSessionToken(0n, 0n)).toBe("");
  });

  it("rejects anything else with INVALID_ARGUMENT naming the field", () => {
    for (const bad of ["abc", "-1", "01", "1.5", " 1", "1e9", "0x10", "18446744073709551616", "999999999999999999999"]) {
      invalid(() => parseSessionToken(bad, "consistency.session_token"), /^consistency\.session_token: malformed session token/);
    }
  });
});

describe("consistency", () => {
  const rc = (init: Parameters<typeof create<typeof ReadConsistencySchema>>[1]): ReturnType<typeof create<typeof ReadConsistencySchema>> =>
    create(ReadConsistencySchema, init);

  it("defaults to BOUNDED with the configured staleness", () => {
    const r = resolveConsistency(undefined, 1000);
    expect(r.consistency.level).toBe(Consistency.BOUNDED);
    expect(r.consistency.stalenessMs).toBe(1000);
    expect(r.token).toBe(0n);
    expect(resolveConsistency(rc({ level: Consistency.BOUNDED }), 750).consistency.stalenessMs).toBe(750);
    expect(resolveConsistency(rc({ level: Consistency.BOUNDED, stalenessMs: 20 }), 750).consistency.stalenessMs).toBe(20);
  });

  it("keeps the other levels, canonicalises the token and drops staleness where it means nothing", () => {
    const s = resolveConsistency(rc({ level: Consistency.SESSION, sessionToken: "123", stalenessMs: 9 }), 1000);
    expect(s.consistency.level).toBe(Consistency.SESSION);
    expect(s.consistency.sessionToken).toBe("123");
    expect(s.consistency.stalenessMs).toBe(0);
    expect(s.token).toBe(123n);
    expect(resolveConsistency(rc({ level: Consistency.STRONG }), 1000).consistency.level).toBe(Consistency.STRONG);
    expect(resolveConsistency(rc({ level: Consistency.EVENTUAL, sessionToken: "5" }), 1000).token).toBe(5n);
  });

  it("rejects unknown levels and malformed tokens", () => {
    invalid(() => resolveConsistency(rc({ level: 42 as Consistency }), 1000), /^consistency\.level: unknown level 42/);
    invalid(() => resolveConsistency(rc({ level: Consistency.SESSION, sessionToken: "x" }), 1000), /^consistency\.session_token: malformed/);
  });
});

describe("page tokens", () => {
  it("round-trip and are opaque base64url", () => {
    const q = { collection: "docs", uid: "u1", filter: "abc", afterId: "id-ü-9", readTs: 77n };
    const t = encodeQueryPageToken(q);
    expect(t).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeQueryPageToken(t)).toEqual(q);
    const h = { collection: "docs", id: "a", ts: 5n, partition: 3, offset: 9n, readTs: 6n };
    expect(decodeHistoryPageToken(encodeHistoryPageToken(h))).toEqual(h);
    const o = { journalToken: "j/1/2", filter: "f", readTs: 0n };
    expect(decodeOperationsPageToken(encodeOperationsPageToken(o))).toEqual(o);
  });

  it("reject garbage and tokens of another RPC", () => {
    invalid(() => decodeQueryPageToken("not a token!"), /^page_token: not a page token/);
    invalid(() => decodeQueryPageToken(Buffer.from("{}").toString("base64url")), /^page_token: not a page token/);
    invalid(() => decodeQueryPageToken(Buffer.from("[1]").toString("base64url")), /^page_token/);
    invalid(() => decodeQueryPageToken("%%%"), /^page_token/);
    const history = encodeHistoryPageToken({ collection: "c", id: "a", ts: 1n, partition: 0, offset: 1n, readTs: 1n });
    invalid(() => decodeQueryPageToken(history), /^page_token: the token belongs to another RPC/);
    const badTs = Buffer.from(JSON.stringify({ v: 1, k: "query", c: "c", u: "u", f: "f", a: "", t: "-1" })).toString("base64url");
    invalid(() => decodeQueryPageToken(badTs), /^page_token/);
  });
});

describe("producer derivation", () => {
  it("is a stable, non-zero 64-bit hash of the request id", () => {
    const a = producerIdOf("req-1");
    expect(a).toBe(producerIdOf("req-1"));
    expect(a).not.toBe(producerIdOf("req-2"));
    expect(a > 0n && a < 1n << 64n).toBe(true);
    // Golden value: a change would break deduplication of retries across a gateway upgrade.
    expect(producerIdOf("req-1")).toBe(9168607589385361941n);
  });
});

describe("request field checks", () => {
  it("request ids: optional, at most 128 bytes, printable, well-formed", () => {
    expect(checkRequestId("")).toBe("");
    expect(checkRequestId("abc-123")).toBe("abc-123");
    expect(checkRequestId("é".repeat(64))).toBe("é".repeat(64));
    invalid(() => checkRequestId("é".repeat(65)), /^request_id: 130 bytes, at most 128/);
    invalid(() => checkRequestId("a\nb"), /^request_id: control characters/);
    invalid(() => checkRequestId("a\ud800"), /^request_id: not well-formed/);
  });

  it("k, ef, limits and ids", () => {
    expect(checkK(1)).toBe(1);
    expect(checkK(1000)).toBe(1000);
    invalid(() => checkK(0), /^k: 0 is out of range 1\.\.1000/);
    invalid(() => checkK(1001), /^k: 1001 is out of range/);
    expect(checkEf(0, 10)).toBe(0);
    expect(checkEf(10, 10)).toBe(10);
    invalid(() => checkEf(5, 10), /^ef: 5 is smaller than k \(10\)/);
    invalid(() => checkEf(5000, 10), /^ef: 5000 is out of range 10\.\.4096/);
    expect(checkLimit(0)).toBe(100);
    expect(checkLimit(1000)).toBe(1000);
    invalid(() => checkLimit(1001), /^limit: 1001 is out of range 1\.\.1000/);
    expect(checkIds(["a", "b"], 10)).toEqual(["a", "b"]);
    invalid(() => checkIds([], 10), /^ids: at least one id/);
    invalid(() => checkIds(["a", "b", "c"], 2), /^ids: 3 ids, at most 2/);
    invalid(() => checkIds(["a", ""], 10), /^ids\[1\]: empty/);
    invalid(() => checkIds(["a", "b", "a"], 10), /^ids\[2\]: duplicate of ids\[0\] "a"/);
    invalid(() => checkIds(["x".repeat(257)], 10), /^ids\[0\]: 257 bytes, at most 256/);
  });
});

describe("validation metric labels", () => {
  it("are bounded: indices, metadata keys and filter paths are dropped", () => {
    expect(fieldKind("records[3].vector")).toBe("records.vector");
    expect(fieldKind("records[3].vector[5]")).toBe("records.vector");
    expect(fieldKind("records[0].metadata.genre")).toBe("records.metadata");
    expect(fieldKind("records[1].id")).toBe("records.id");
    expect(fieldKind("ids[4]")).toBe("ids");
    expect(fieldKind("filter.year.$gte")).toBe("filter");
    expect(fieldKind("hnsw.ef_construction")).toBe("hnsw");
    expect(fieldKind("consistency.session_token")).toBe("consistency");
    expect(fieldKind("session_token")).toBe("session_token");
    expect(fieldKind("something_made_up")).toBe("other");
  });
});

describe("API keys", () => {
  const secret = "s3cret-key-0123456789";
  it("accept hashed and plaintext keys, roles and scopes", () => {
    const keys = parseApiKeys(
      {
        keys: [
          { id: "ops", key_sha256: sha256Hex(secret), role: "admin" },
          { id: "ci", key: "another-secret-key-xyz", role: "writer", collections: ["docs"], requests_per_second: 5, bytes_per_second: 1000 },
        ],
      },
      "keys.json",
    );
    expect(keys.map((k) => [k.id, k.role])).toEqual([
      ["ops", "admin"],
      ["ci", "writer"],
    ]);
    expect(keys[1]!.collections).toEqual(new Set(["docs"]));
    const ring = new KeyRing(keys);
    expect(ring.open).toBe(false);
    expect(ring.authenticate(secret)?.id).toBe("ops");
    expect(ring.authenticate("another-secret-key-xyz")?.id).toBe("ci");
    invalid(() => ring.authenticate(undefined), /missing API key/, Code.Unauthenticated);
    invalid(() => ring.authenticate("wrong"), /unknown API key/, Code.Unauthenticated);
    expect(new KeyRing([]).open).toBe(true);
    expect(new KeyRing([]).authenticate(undefined)).toBeUndefined();
  });

  it("report every problem of a bad file at once", () => {
    expect(() =>
      parseApiKeys(
        [
          { id: "", key: "short", role: "root", extra: 1 },
          { id: "a", key_sha256: "zz", role: "reader", collections: "docs" },
          { id: "b", role: "reader", requests_per_second: -1 },
          { id: "c", key: "same-key-0123456789", role: "reader" },
          { id: "c", key: "same-key-0123456789", role: "reader" },
        ],
        "keys.json",
      ),
    ).toThrow(
      new RegExp(
        [
          "invalid API keys in keys.json:",
          "  keys\\[0\\]\\.extra: unknown field",
          "  keys\\[0\\]\\.id: expected .*",
          "  keys\\[0\\]\\.key: at least 16 characters",
          "  keys\\[0\\]\\.role: expected admin, writer or reader",
          "  keys\\[1\\]\\.key_sha256: expected 64 hex digits",
          "  keys\\[1\\]\\.collections: expected a list of collection names",
          "  keys\\[2\\]: key_sha256 \\(or key\\) is required",
          "  keys\\[2\\]\\.requests_per_second: expected a number >= 0 \\(0: unlimited\\)",
          '  keys\\[4\\]\\.id: duplicate id "c"',
          "  keys\\[4\\]: the same key as an earlier entry",
        ].join("\\n"),
      ),
    );
    expect(() => parseApiKeys({ nope: 1 }, "k.json")).toThrow(/k\.json: expected a list of API keys/);
  });

  it("are read from Authorization: Bearer or x-api-key", () => {
    expect(presentedKey(new Headers({ authorization: "Bearer abc" }))).toBe("abc");
    expect(presentedKey(new Headers({ authorization: "bearer   abc " }))).toBe("abc");
    expect(presentedKey(new Headers({ authorization: "Basic abc" }))).toBeUndefined();
    expect(presentedKey(new Headers({ "x-api-key": "k" }))).toBe("k");
    expect(presentedKey(new Headers())).toBeUndefined();
  });
});

describe("rate limits", () => {
  it("a token bucket refills continuously and lets one large request into debt", () => {
    let t = 0;
    const b = new TokenBucket(10, 10, () => t);
    for (let i = 0; i < 10; i++) {
      expect(b.waitMs(1)).toBe(0);
      b.take(1);
    }
    expect(b.waitMs(1)).toBe(100);
    t = 100;
    expect(b.waitMs(1)).toBe(0);
    // Larger than the burst: allowed once the bucket is full, then the debt delays others.
    t = 10_000;
    expect(b.waitMs(50)).toBe(0);
    b.take(50);
    expect(b.waitMs(1)).toBe(4_100);
  });

  it("the limiter refuses with RESOURCE_EXHAUSTED and a retry hint, taking nothing", () => {
    let t = 0;
    const keys = parseApiKeys([{ id: "k", key: "0123456789abcdefgh", role: "reader", requests_per_second: 2, bytes_per_second: 100 }], "x");
    const limiter = new RateLimiter(keys, { requestsPerSecond: 0, bytesPerSecond: 0 }, () => t);
    limiter.admit("k", 10);
    limiter.admit("k", 10);
    let err: unknown;
    try {
      limiter.admit("k", 10);
    } catch (e) {
      err = e;
    }
    expect(isVecraftError(err) && err.code).toBe(Code.ResourceExhausted);
    expect(isVecraftError(err) && err.message).toMatch(/rate limit of 2 requests\/s for API key "k" exceeded; retry in 500 ms/);
    expect(isVecraftError(err) && err.details).toEqual({ retryAfterMs: 500, limit: "requests" });
    // A request larger than the byte burst passes when the bucket is full, and its debt
    // holds back the next one.
    t = 1000;
    limiter.admit("k", 500);
    invalid(() => limiter.admit("k", 10), /rate limit of 100 bytes\/s .* retry in 4100 ms/, Code.ResourceExhausted);
    t = 100_000;
    limiter.admit("k", 500);
    // Unknown principals and the open gateway without defaults are unlimited.
    for (let i = 0; i < 100; i++) limiter.admit("anonymous", 1_000_000);
  });
});

describe("codec", () => {
  it("vectors travel as little-endian float32 bytes", () => {
    const v = Float32Array.from([1, -2.5, 3.25, 0]);
    const bytes = vectorToBytes(v);
    expect([...bytes.subarray(0, 4)]).toEqual([0, 0, 128, 63]);
    expect(bytesToVector(bytes)).toEqual([1, -2.5, 3.25, 0]);
    // An unaligned view (as protobuf may hand out) decodes the same.
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    expect(bytesToVector(shifted.subarray(1))).toEqual([1, -2.5, 3.25, 0]);
    expect(bytesToVector(new Uint8Array(0))).toEqual([]);
    invalid(() => bytesToVector(new Uint8Array(3)), /3 bytes is not a whole number/, Code.Internal);
  });

  it("metadata JSON text becomes a Struct value; filters get a canonical text", () => {
    expect(metadataFromJson("")).toBeUndefined();
    expect(metadataFromJson('{"a":[1,"x",null],"b":{"c":true}}')).toEqual({ a: [1, "x", null], b: { c: true } });
    invalid(() => metadataFromJson("[1]"), /not a JSON object/, Code.Internal);
    invalid(() => metadataFromJson("{"), /not valid JSON/, Code.Internal);
    expect(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: "x" } })).toBe('{"a":{"c":"x","d":[2,{"e":0,"f":1}]},"b":1}');
  });

  it("trace ids come from traceparent, else x-trace-id, else are made up", () => {
    expect(traceIdOf(new Headers({ traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" }))).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(traceIdOf(new Headers({ "x-trace-id": "abc-123" }))).toBe("abc-123");
    expect(traceIdOf(new Headers({ traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01" }))).toMatch(/^[0-9a-f]{32}$/);
    expect(traceIdOf(new Headers())).toMatch(/^[0-9a-f]{32}$/);
  });
});
