// End-to-end through the public API against a real standalone process (what `pnpm
// start` runs): recall on real data, filtered search, writes and history, consistency
// levels, and bad input. Crash tests are in test/fault.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { encode } from "@vecraft/hlc";
import { Consistency, FieldType, Metric, OperationType, Op } from "@vecraft/rpc";
import { bruteForce, loadMnist, MNIST_DIM, type Digit } from "./mnist.js";
import { startVecraft, type VecraftProcess } from "./standalone-process.js";

let root: string;
let v: VecraftProcess;
let indexed: Digit[];
let queries: Digit[];
let token = "";

async function codeOf(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("expected the call to fail");
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "vecraft-e2e-"));
  v = await startVecraft(join(root, "data"));
  const all = loadMnist();
  queries = all.filter((_, i) => i % 100 === 7);
  indexed = all.filter((_, i) => i % 100 !== 7);
  await v.client.createCollection({
    name: "mnist",
    dimension: MNIST_DIM,
    metric: Metric.L2,
    shards: 2,
    fields: [
      { name: "label", type: FieldType.INT, indexed: true },
      { name: "parity", type: FieldType.STRING, indexed: true },
    ],
  });
  // Ingest with a few requests in flight, as a client would.
  const batches: Digit[][] = [];
  for (let i = 0; i < indexed.length; i += 500) batches.push(indexed.slice(i, i + 500));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < batches.length) {
      const batch = batches[next++]!;
      const res = await v.client.upsert({
        collection: "mnist",
        records: batch.map((d) => ({ id: d.id, vector: Array.from(d.vector), metadata: { label: d.label, parity: d.label % 2 === 0 ? "even" : "odd" } })),
      });
      if (BigInt(res.sessionToken) > BigInt(token || "0")) token = res.sessionToken;
    }
  };
  await Promise.all([worker(), worker(), worker()]);
}, 300_000);

afterAll(async () => {
  await v?.stop();
  await rm(root, { recursive: true, force: true });
});

describe("search on real data (mnist, 10k x 784)", () => {
  it("reaches recall@10 >= 0.95 against brute force", async () => {
    let hits = 0;
    for (const q of queries) {
      const res = await v.client.search({ collection: "mnist", vector: Array.from(q.vector), k: 10, consistency: { level: Consistency.SESSION, sessionToken: token } });
      const truth = new Set(bruteForce(indexed, q.vector, 10));
      hits += res.hits.filter((h) => truth.has(h.id)).length;
      // l2 scores are distances, best (smallest) first.
      for (let i = 1; i < res.hits.length; i++) expect(res.hits[i]!.score).toBeGreaterThanOrEqual(res.hits[i - 1]!.score);
    }
    const recall = hits / (queries.length * 10);
    console.log(`recall@10 = ${recall.toFixed(4)} over ${queries.length} queries`);
    expect(recall).toBeGreaterThanOrEqual(0.95);
  });

  it("filtered search returns exactly the brute-force top k among matching records (selective and broad)", async () => {
    const cases: { filter: JsonObject; keep: (d: Digit) => boolean }[] = [
      { filter: { label: 3 }, keep: (d) => d.label === 3 }, // ~10%: scored exactly
      { filter: { $and: [{ label: { $gte: 8 } }, { parity: "even" }] }, keep: (d) => d.label === 8 }, // ~10%
      { filter: { label: { $ne: 3 } }, keep: (d) => d.label !== 3 }, // ~90%: HNSW, oversampled
      { filter: { parity: { $in: ["odd"] } }, keep: (d) => d.label % 2 === 1 }, // ~50%
    ];
    for (const { filter, keep } of cases) {
      const matching = indexed.filter(keep);
      for (const q of queries.slice(0, 15)) {
        const res = await v.client.search({
          collection: "mnist",
          vector: Array.from(q.vector),
          k: 10,
          ef: 400,
          filter,
          includeMetadata: true,
          consistency: { level: Consistency.SESSION, sessionToken: token },
        });
        expect(res.hits.map((h) => h.id), JSON.stringify(filter)).toEqual(bruteForce(matching, q.vector, 10));
      }
    }
  });
});

describe("writes, history and consistency", () => {
  beforeAll(async () => {
    await v.client.createCollection({ name: "small", dimension: 3, metric: Metric.COSINE, fields: [{ name: "genre", type: FieldType.STRING, indexed: false }] });
  });

  it("upsert replaces, delete removes, history lists every version in order", async () => {
    const w1 = await v.client.upsert({ collection: "small", records: [{ id: "x", vector: [1, 0, 0], metadata: { genre: "drama" } }] });
    const w2 = await v.client.upsert({ collection: "small", records: [{ id: "x", vector: [0, 1, 0], metadata: { genre: "comedy" } }], sessionToken: w1.sessionToken });
    const got = await v.client.get({ collection: "small", ids: ["x"], consistency: { level: Consistency.SESSION, sessionToken: w2.sessionToken } });
    expect(got.records[0]!.vector).toEqual([0, 1, 0]);
    expect(got.records[0]!.metadata).toEqual({ genre: "comedy" });
    const d = await v.client.delete({ collection: "small", ids: ["x"], sessionToken: w2.sessionToken });
    const gone = await v.client.get({ collection: "small", ids: ["x"], consistency: { level: Consistency.SESSION, sessionToken: d.sessionToken } });
    expect(gone.records).toHaveLength(0);
    expect(gone.missingIds).toEqual(["x"]);
    const s = await v.client.search({ collection: "small", vector: [0, 1, 0], k: 5, consistency: { level: Consistency.SESSION, sessionToken: d.sessionToken } });
    expect(s.hits.map((h) => h.id)).not.toContain("x");
    const hist = await v.client.getRecordHistory({ collection: "small", id: "x" });
    expect(hist.versions.map((h) => h.op)).toEqual([Op.UPSERT, Op.UPSERT, Op.DELETE]);
    expect(hist.versions[0]!.vector).toEqual([1, 0, 0]);
    expect(hist.versions[1]!.metadata).toEqual({ genre: "comedy" });
    for (let i = 1; i < hist.versions.length; i++) expect(hist.versions[i]!.ts > hist.versions[i - 1]!.ts).toBe(true);
    // Lineage of a request: its entries, and whether each shard replica applied them.
    const lineage = await v.client.getRequestLineage({ requestId: w2.requestId });
    expect(lineage.entries.length).toBeGreaterThan(0);
    // Global operation order.
    const ops = await v.client.listOperations({ collection: "small" });
    expect(ops.operations.filter((o) => o.type === OperationType.WRITE).map((o) => o.requestId)).toEqual([w1.requestId, w2.requestId, d.requestId]);
  });

  it("SESSION sees the session's own write; STRONG sees every acknowledged write", async () => {
    for (let i = 0; i < 5; i++) {
      const w = await v.client.upsert({ collection: "small", records: [{ id: `s${i}`, vector: [1, i, 0] }] });
      const session = await v.client.get({ collection: "small", ids: [`s${i}`], consistency: { level: Consistency.SESSION, sessionToken: w.sessionToken } });
      expect(session.records.map((r) => r.id)).toEqual([`s${i}`]);
      expect(BigInt(session.readTs)).toBeGreaterThanOrEqual(BigInt(w.sessionToken));
      const w2 = await v.client.upsert({ collection: "small", records: [{ id: `t${i}`, vector: [0, i, 1] }] });
      // No token: a strong read started after the acknowledgement still sees it.
      const strong = await v.client.get({ collection: "small", ids: [`t${i}`], consistency: { level: Consistency.STRONG } });
      expect(strong.records.map((r) => r.id)).toEqual([`t${i}`]);
      expect(BigInt(strong.readTs)).toBeGreaterThan(BigInt(w2.sessionToken));
    }
    // EVENTUAL answers without waiting (it may or may not see the newest write).
    const ev = await v.client.search({ collection: "small", vector: [1, 0, 0], k: 3, consistency: { level: Consistency.EVENTUAL } });
    expect(ev.hits.length).toBeGreaterThan(0);
  });

  it("a read that cannot reach its timestamp fails clearly instead of returning stale data", async () => {
    const future = String(encode(Date.now() + 60_000, 0));
    const err = await codeOf(
      v.client.get({ collection: "small", ids: ["s0"], consistency: { level: Consistency.SESSION, sessionToken: future } }, { timeoutMs: 1500 }),
    );
    expect([Code.DeadlineExceeded, Code.Unavailable]).toContain(err.code);
  });
});

describe("bad input is rejected before anything is journaled", () => {
  it("answers invalid_argument / not_found naming the problem, and writes nothing", async () => {
    await v.client.createCollection({ name: "strict", dimension: 3, metric: Metric.COSINE, fields: [{ name: "year", type: FieldType.INT, indexed: true }] });
    const before = (await v.client.listOperations({ collection: "strict" })).operations.length;
    const good = { id: "ok", vector: [1, 0, 0] };
    const cases: [string, Record<string, unknown>, number, RegExp][] = [
      ["Upsert", { collection: "strict", records: [good, { id: "b", vector: [1, 0] }] }, 400, /records\[1\]\.vector/],
      ["Upsert", { collection: "strict", records: [good, { id: "b", vector: [1, "NaN", 0] }] }, 400, /records\[1\]\.vector/],
      ["Upsert", { collection: "strict", records: [good, { id: "b", vector: [1, "Infinity", 0] }] }, 400, /records\[1\]\.vector/],
      ["Upsert", { collection: "strict", records: [good, { id: "z", vector: [0, 0, 0] }] }, 400, /records\[1\]\.vector.*zero/],
      ["Upsert", { collection: "strict", records: [good, { id: "", vector: [1, 0, 0] }] }, 400, /records\[1\]\.id/],
      ["Upsert", { collection: "strict", records: [good, { id: "x".repeat(300), vector: [1, 0, 0] }] }, 400, /records\[1\]\.id/],
      ["Upsert", { collection: "strict", records: [good, good] }, 400, /records\[1\]\.id.*duplicate/],
      ["Upsert", { collection: "strict", records: [good, { id: "m", vector: [1, 0, 0], metadata: { year: "1999" } }] }, 400, /records\[1\]\.metadata\.year/],
      ["Upsert", { collection: "nope", records: [good] }, 404, /nope/],
      ["Search", { collection: "strict", vector: [1, 0, 0], k: 0 }, 400, /\bk\b/],
      ["Search", { collection: "strict", vector: [1, 0, 0], k: 1001 }, 400, /\bk\b/],
      ["Search", { collection: "strict", vector: [1, 0, 0], k: 5, filter: { color: "red" } }, 400, /color/],
      ["Search", { collection: "strict", vector: [1, 0, 0], k: 5, filter: { year: { $near: 3 } } }, 400, /\$near/],
      ["Search", { collection: "nope", vector: [1, 0, 0], k: 5 }, 404, /nope/],
    ];
    for (const [method, body, status, message] of cases) {
      const res = await v.json(method, body);
      expect(res.status, `${method} ${JSON.stringify(body).slice(0, 120)}`).toBe(status);
      expect(String(res.body.message), `${method} ${JSON.stringify(body).slice(0, 120)}`).toMatch(message);
    }
    // A typo in a field name is an error, not silently dropped data.
    const typo = await v.json("Upsert", { collection: "strict", records: [{ id: "t", vector: [1, 0, 0], metdata: { year: 1 } }] });
    expect(typo.status).toBe(400);
    expect(String(typo.body.message)).toMatch(/metdata/);
    const malformed = await v.json("Upsert", '{"collection": "strict", "records": [');
    expect(malformed.status).toBe(400);
    const huge = await v.json("Upsert", { collection: "strict", records: Array.from({ length: 5000 }, (_, i) => ({ id: `h${i}`, vector: [1, 0, 0] })) });
    expect([400, 413, 429]).toContain(huge.status);
    expect(String(huge.body.message)).toMatch(/records|too large|exceeds|limit/i);
    const after = (await v.client.listOperations({ collection: "strict" })).operations.length;
    expect(after).toBe(before);
    // A request id reused for different content is not a retry: ALREADY_EXISTS, nothing written.
    await v.client.upsert({ collection: "strict", requestId: "load-1", records: [{ id: "p", vector: [1, 0, 0] }] });
    const reused = await v.json("Upsert", { collection: "strict", request_id: "load-1", records: [{ id: "p", vector: [0, 1, 0] }] });
    expect(reused.status).toBe(409);
    expect(String(reused.body.message)).toMatch(/request_id/);
    const same = await v.client.get({ collection: "strict", ids: ["p"], consistency: { level: Consistency.STRONG } });
    expect(same.records[0]!.vector).toEqual([1, 0, 0]);
    // So is a create retried under the same request id with another spec.
    await v.client.createCollection({ name: "once", dimension: 3, metric: Metric.COSINE, requestId: "create-once" });
    const again = await v.json("CreateCollection", { name: "once", dimension: 4, metric: "METRIC_L2", request_id: "create-once" });
    expect(again.status).toBe(409);
  });
});
