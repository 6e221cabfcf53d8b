// The SDK against an in-memory VecraftService (createRouterTransport).
import { describe, expect, it } from "vitest";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { Consistency, FieldType, Metric } from "@vecraft/rpc";
import type { CreateCollectionRequest, ReadConsistency, SearchRequest, UpsertRequest } from "@vecraft/rpc";
import { createVecraftClient, laterSessionToken } from "../src/index.js";
import type { ClientRetryInfo, VecraftClient, VecraftClientOptions } from "../src/index.js";
import { createFake, type FakeVecraft } from "./fake-vecraft.js";

const unavailable = (): ConnectError => new ConnectError("partition 0 is electing a leader", Code.Unavailable);

function setup(options: Partial<VecraftClientOptions> = {}): { fake: FakeVecraft; client: VecraftClient; retries: ClientRetryInfo[] } {
  const fake = createFake();
  const retries: ClientRetryInfo[] = [];
  const client = createVecraftClient({
    transport: fake.transport,
    retry: { initialMs: 1, maxMs: 5, budgetMs: 2_000, onRetry: (info) => retries.push(info) },
    ...options,
  });
  return { fake, client, retries };
}

async function withCollection(options: Partial<VecraftClientOptions> = {}): Promise<ReturnType<typeof setup>> {
  const s = setup(options);
  await s.client.createCollection({ name: "docs", dimension: 2, metric: "l2" });
  return s;
}

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ConnectError);
    return e as ConnectError;
  }
  throw new Error("expected the call to fail");
}

describe("session tokens", () => {
  it("keeps the greatest token seen and presents it on writes and session reads", async () => {
    const { fake, client } = await withCollection();
    expect(client.sessionToken).toBeUndefined();

    const w = await client.upsert("docs", [{ id: "a", vector: [1, 2] }]);
    expect(w.sessionToken).toBe(fake.clock.toString());
    expect(client.sessionToken).toBe(w.sessionToken);

    // A session read carries the token; a bounded read does not.
    await client.search("docs", [1, 2], { consistency: "session" });
    await client.search("docs", [1, 2], { consistency: { level: "bounded", stalenessMs: 250 } });
    const [session, bounded] = fake.callsOf("Search").map((c) => (c.request as unknown as SearchRequest).consistency!) as [ReadConsistency, ReadConsistency];
    expect(session.level).toBe(Consistency.SESSION);
    expect(session.sessionToken).toBe(w.sessionToken);
    expect(bounded.level).toBe(Consistency.BOUNDED);
    expect(bounded.stalenessMs).toBe(250);
    expect(bounded.sessionToken).toBe("");

    // A read that answers with a later token moves the session forward...
    fake.readToken = (BigInt(w.sessionToken) + 100n).toString();
    await client.get("docs", ["a"], { consistency: "eventual" });
    expect(client.sessionToken).toBe(fake.readToken);
    // ...and one with an older token does not move it back.
    fake.readToken = "5";
    await client.get("docs", ["a"], { consistency: "eventual" });
    expect(client.sessionToken).toBe((BigInt(w.sessionToken) + 100n).toString());

    // The next write presents the greatest token as its causal token.
    await client.delete("docs", ["a"]);
    const del = fake.callsOf("Delete")[0]!.request as { sessionToken: string };
    expect(del.sessionToken).toBe((BigInt(w.sessionToken) + 100n).toString());
  });

  it("can be carried to another client, and the setter replaces it", async () => {
    const { fake, client } = await withCollection();
    await client.upsert("docs", [{ id: "a", vector: [1, 2] }]);
    const other = createVecraftClient({ transport: fake.transport, sessionToken: client.sessionToken!, consistency: "session" });
    await other.get("docs", ["a"]);
    const sent = (fake.callsOf("Get")[0]!.request as { consistency: ReadConsistency }).consistency;
    expect(sent.level).toBe(Consistency.SESSION);
    expect(sent.sessionToken).toBe(client.sessionToken);

    client.sessionToken = "7";
    expect(client.sessionToken).toBe("7");
    client.sessionToken = undefined;
    expect(client.sessionToken).toBeUndefined();
  });

  it("lets a caller's token on a session level win over the tracked one", async () => {
    const { fake, client } = await withCollection({ sessionToken: "1500" });
    await client.get("docs", ["x"], { consistency: { level: "session", sessionToken: "1200" } });
    const sent = (fake.callsOf("Get")[0]!.request as { consistency: ReadConsistency }).consistency;
    expect(sent.sessionToken).toBe("1200");
  });

  it("compares decimal tokens as integers and otherwise keeps the latest", () => {
    expect(laterSessionToken("900", "1000")).toBe("1000");
    expect(laterSessionToken("1000", "999")).toBe("1000");
    // As integers, not as strings ("99" > "100" as strings).
    expect(laterSessionToken("100", "99")).toBe("100");
    expect(laterSessionToken("18446744073709551615", "18446744073709551614")).toBe("18446744073709551615");
    expect(laterSessionToken("100", "opaque-v2")).toBe("opaque-v2");
    expect(laterSessionToken("opaque-v2", "100")).toBe("100");
    expect(laterSessionToken("100", "")).toBe("100");
    expect(laterSessionToken(undefined, "")).toBeUndefined();
    expect(laterSessionToken(undefined, "5")).toBe("5");
    expect(laterSessionToken("-5", "3")).toBe("3");
  });
});

describe("retries", () => {
  it("retries a write after UNAVAILABLE with the same request id", async () => {
    const { fake, client, retries } = await withCollection();
    fake.failNext("Upsert", unavailable, unavailable);
    const res = await client.upsert("docs", [{ id: "a", vector: [1, 2] }]);
    const attempts = fake.callsOf("Upsert").map((c) => c.request as unknown as UpsertRequest);
    expect(attempts).toHaveLength(3);
    const ids = new Set(attempts.map((a) => a.requestId));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.requestId).toBe(attempts[0]!.requestId);
    expect(retries.map((r) => [r.method, r.attempt, r.requestId, r.error.code])).toEqual([
      ["Upsert", 1, res.requestId, Code.Unavailable],
      ["Upsert", 2, res.requestId, Code.Unavailable],
    ]);
  });

  it("keeps the caller's request id and retries DEADLINE_EXCEEDED and broken connections on writes", async () => {
    const fake = createFake();
    // A reset connection never reaches the server: inject it on the client side, the way
    // connect-node reports it (Aborted, with the Node error as the cause).
    let resets = 1;
    const resetOnce: Interceptor = (next) => (req) => {
      if (req.method.name === "Delete" && resets-- > 0) {
        const reset = Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });
        throw new ConnectError("stream reset", Code.Aborted, undefined, undefined, reset);
      }
      return next(req);
    };
    const client = createVecraftClient({
      transport: createRouterTransport(fake.routes, { transport: { interceptors: [resetOnce] } }),
      retry: { initialMs: 1, maxMs: 5 },
    });
    await client.createCollection({ name: "docs", dimension: 2, metric: "l2" });
    fake.failNext("Delete", () => new ConnectError("deadline exceeded", Code.DeadlineExceeded));
    const res = await client.delete("docs", ["a"], { requestId: "batch-7" });
    expect(res.requestId).toBe("batch-7");
    // The reset attempt never reached the fake; the deadline one did, and so did the last.
    expect(fake.callsOf("Delete").map((c) => (c.request as { requestId: string }).requestId)).toEqual(["batch-7", "batch-7"]);
    // Server-side Aborted (a lost compare-and-set) is not a broken connection: no retry.
    fake.failNext("Delete", () => new ConnectError("epoch conflict", Code.Aborted));
    expect((await failure(client.delete("docs", ["a"]))).code).toBe(Code.Aborted);
    expect(fake.callsOf("Delete")).toHaveLength(3);
  });

  it("never retries INVALID_ARGUMENT, and surfaces the server's code and message", async () => {
    const { fake, client, retries } = await withCollection();
    const err = await failure(
      client.upsert("docs", [
        { id: "a", vector: [1, 2] },
        { id: "b", vector: [1, 2, 3] },
      ]),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("records[1].vector: expected 2 dimensions, got 3");
    expect(fake.callsOf("Upsert")).toHaveLength(1);
    expect(retries).toEqual([]);
  });

  it("retries reads on UNAVAILABLE only", async () => {
    const { fake, client } = await withCollection();
    fake.failNext("Search", unavailable);
    await client.search("docs", [0, 0]);
    expect(fake.callsOf("Search")).toHaveLength(2);

    const missing = await failure(client.describeCollection("nope"));
    expect(missing.code).toBe(Code.NotFound);
    expect(missing.rawMessage).toBe('collection "nope" does not exist');
    expect(fake.callsOf("DescribeCollection")).toHaveLength(1);

    // A read's own deadline is final: retrying would only read later than asked.
    fake.failNext("Get", () => new ConnectError("replica did not reach read_ts", Code.DeadlineExceeded));
    expect((await failure(client.get("docs", ["a"]))).code).toBe(Code.DeadlineExceeded);
    expect(fake.callsOf("Get")).toHaveLength(1);
  });

  it("gives up when the budget or the attempts run out, with the last error", async () => {
    const { fake, client } = await withCollection({ retry: { initialMs: 1, maxMs: 1, maxAttempts: 3 } });
    fake.failNext("Upsert", unavailable, unavailable, unavailable, unavailable);
    const err = await failure(client.upsert("docs", [{ id: "a", vector: [1, 2] }]));
    expect(err.code).toBe(Code.Unavailable);
    expect(fake.callsOf("Upsert")).toHaveLength(3);

    const none = await withCollection({ retry: false });
    none.fake.failNext("ListCollections", unavailable);
    expect((await failure(none.client.listCollections())).code).toBe(Code.Unavailable);
    expect(none.fake.callsOf("ListCollections")).toHaveLength(1);
  });

  it("stops retrying when the caller's signal aborts, with Canceled", async () => {
    const { fake, client } = await withCollection({ retry: { initialMs: 10_000, maxMs: 10_000, jitter: 0 } });
    fake.failNext("Upsert", unavailable);
    const ac = new AbortController();
    const p = client.upsert("docs", [{ id: "a", vector: [1, 2] }], { signal: ac.signal });
    await new Promise((r) => setTimeout(r, 20));
    ac.abort(new Error("user pressed Ctrl-C"));
    const err = await failure(p);
    expect(err.code).toBe(Code.Canceled);
    expect(fake.callsOf("Upsert")).toHaveLength(1);
  });
});

describe("conversions", () => {
  it("creates and describes collections with friendly names", async () => {
    const { fake, client } = setup({ apiKey: "secret-key" });
    const created = await client.createCollection({
      name: "docs",
      dimension: 3,
      metric: "cosine",
      shards: 4,
      hnsw: { m: 32 },
      fields: [
        { name: "genre", type: "string", indexed: true },
        { name: "tags", type: "string_list" },
      ],
    });
    const req = fake.callsOf("CreateCollection")[0]!;
    const sent = req.request as unknown as CreateCollectionRequest;
    expect(sent.metric).toBe(Metric.COSINE);
    expect(sent.shards).toBe(4);
    expect(sent.replicationFactor).toBe(0);
    expect(sent.hnsw?.m).toBe(32);
    expect(sent.fields.map((f) => [f.name, f.type, f.indexed])).toEqual([
      ["genre", FieldType.STRING, true],
      ["tags", FieldType.STRING_LIST, false],
    ]);
    expect(sent.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(req.headers.get("authorization")).toBe("Bearer secret-key");
    expect(created).toMatchObject({
      name: "docs",
      dimension: 3,
      metric: "cosine",
      shards: 4,
      replicationFactor: 1,
      hnsw: { m: 32, efConstruction: 128, efSearch: 64 },
      fields: [
        { name: "genre", type: "string", indexed: true },
        { name: "tags", type: "string_list", indexed: false },
      ],
    });
    expect(typeof created.createdTs).toBe("bigint");
    expect(created.stats).toBeUndefined();

    const described = await client.describeCollection("docs");
    expect(described.stats).toEqual({
      records: 0n,
      shards: [{ shard: 0, partition: 0, records: 0n, appliedOffset: 7n, appliedTs: fake.clock, node: "node-1", available: true }],
    });
    expect((await client.listCollections()).map((c) => c.name)).toEqual(["docs"]);
    await client.dropCollection("docs");
    expect(await client.listCollections()).toEqual([]);
  });

  it("rejects an unknown metric or level before sending anything", async () => {
    const { fake, client } = await withCollection();
    const metric = await failure(client.createCollection({ name: "x", dimension: 2, metric: "hamming" as "l2" }));
    expect(metric.code).toBe(Code.InvalidArgument);
    expect(metric.rawMessage).toMatch(/unknown metric "hamming"/);
    const level = await failure(client.search("docs", [1, 2], { consistency: "linearizable" as "strong" }));
    expect(level.code).toBe(Code.InvalidArgument);
    expect(fake.callsOf("Search")).toHaveLength(0);
  });

  it("writes Float32Array vectors and metadata, and reads them back", async () => {
    const { client } = await withCollection();
    const w = await client.upsert("docs", [
      { id: "a", vector: Float32Array.from([0.5, 0.25]), metadata: { genre: "drama", year: 2001 } },
      { id: "b", vector: [3, 4] },
    ]);
    expect(w.count).toBe(2);
    expect(w.entries).toEqual([{ partition: 0, offset: 1n, ts: BigInt(w.sessionToken) }]);

    const got = await client.get("docs", ["a", "zzz"]);
    expect(got.records).toEqual([{ id: "a", vector: [0.5, 0.25], metadata: { genre: "drama", year: 2001 } }]);
    expect(got.missingIds).toEqual(["zzz"]);

    const found = await client.search("docs", new Float64Array([3, 4]), { k: 2, includeMetadata: true, includeVectors: true });
    expect(found.hits.map((h) => h.id)).toEqual(["b", "a"]);
    expect(found.hits[0]).toEqual({ id: "b", score: 0, metadata: {}, vector: [3, 4] });
    const bare = await client.search("docs", [3, 4], { k: 1 });
    expect(bare.hits[0]).toEqual({ id: "b", score: 0 });
  });

  it("iterates query pages until the last", async () => {
    const { client } = await withCollection();
    await client.upsert(
      "docs",
      Array.from({ length: 5 }, (_, i) => ({ id: `r${i}`, vector: [i, 1], metadata: { even: i % 2 === 0 } })),
    );
    const first = await client.query("docs", { limit: 2 });
    expect(first.records.map((r) => r.id)).toEqual(["r0", "r1"]);
    expect(first.nextPageToken).not.toBe("");
    const ids: string[][] = [];
    for await (const page of client.queryPages("docs", { limit: 2 })) ids.push(page.records.map((r) => r.id));
    expect(ids).toEqual([["r0", "r1"], ["r2", "r3"], ["r4"]]);
    const even: string[] = [];
    for await (const page of client.queryPages("docs", { filter: { even: true } })) even.push(...page.records.map((r) => r.id));
    expect(even).toEqual(["r0", "r2", "r4"]);
  });

  it("converts history, lineage, operations and cluster status", async () => {
    const { client } = setup();
    const history = await client.getRecordHistory("docs", "a");
    expect(history.versions).toEqual([
      { ts: 1001n, partition: 0, offset: 2n, op: "upsert", requestId: "r1", principal: "alice", vector: [1, 2], metadata: { a: 1 } },
      { ts: 1002n, partition: 0, offset: 3n, op: "delete", requestId: "r2", principal: "bob", vector: [] },
    ]);

    const lineage = await client.getRequestLineage("req-1");
    expect(lineage.requestId).toBe("req-1");
    expect(lineage.entries[0]).toEqual({
      position: { partition: 1, offset: 9n, ts: 1005n },
      type: "write",
      collection: "docs",
      shard: 2,
      upsertedIds: ["a", "b"],
      deletedIds: [],
      principal: "alice",
      replicas: [
        { node: "s1", applied: true, appliedAt: new Date(1_700_000_000_000), appliedOffset: 9n, appliedTs: 1005n, alive: true },
        { node: "s2", applied: false, appliedOffset: 8n, appliedTs: 1004n, alive: false },
      ],
    });

    const ops: string[] = [];
    for await (const page of client.listOperationsPages({ collection: "docs", fromTs: 1000n })) {
      ops.push(...page.operations.map((o) => `${o.type}:${o.requestId}`));
    }
    expect(ops).toEqual(["create_collection:r1", "write:r2", "write:r3"]);

    const status = await client.getClusterStatus();
    expect(status.nodes).toEqual([{ id: "n1", roles: ["gateway", "storage"], address: "127.0.0.1:7000", alive: true }]);
    expect(status.partitions[0]).toEqual({ partition: 0, leader: "n1", epoch: 3, commitOffset: 42n, closedTs: 1010n, replicas: ["n1"] });
    expect(status.shardReplicas[0]).toMatchObject({ collection: "docs", lag: 2n, lagMs: 5n, serving: true });
  });
});

describe("watchChanges", () => {
  it("streams changes and resumes after resolvedTs when the stream breaks", async () => {
    const { fake, client, retries } = setup();
    fake.failNext("WatchChanges.mid", unavailable);
    const seen: string[] = [];
    for await (const batch of client.watchChanges("docs", { fromTs: 1001n })) {
      seen.push(...batch.changes.map((c) => `${c.id}@${c.ts}:${c.op}`));
    }
    // The break after 1001 is healed by reconnecting from 1002: no gap, no duplicate.
    expect(seen).toEqual(["id1001@1001:upsert", "id1002@1002:upsert", "id1003@1003:upsert"]);
    expect(fake.callsOf("WatchChanges").map((c) => (c.request as { fromTs: bigint }).fromTs)).toEqual([1001n, 1002n]);
    expect(retries.map((r) => r.method)).toEqual(["WatchChanges"]);
  });

  it("fails without reconnecting on a non-retryable error or when reconnect is off", async () => {
    const { fake, client } = setup();
    fake.failNext("WatchChanges", () => new ConnectError("no such collection", Code.NotFound));
    const consume = async (opts: { reconnect?: boolean } = {}): Promise<void> => {
      for await (const _ of client.watchChanges("docs", opts)) {
        // drain
      }
    };
    expect((await failure(consume())).code).toBe(Code.NotFound);
    fake.failNext("WatchChanges.mid", unavailable);
    expect((await failure(consume({ reconnect: false }))).code).toBe(Code.Unavailable);
  });
});

describe("options", () => {
  it("validates the options when the client is created", () => {
    expect(() => createVecraftClient({})).toThrow(/needs a baseUrl/);
    expect(() => createVecraftClient({ baseUrl: "localhost:8080" })).toThrow(/must be http/);
    expect(() => createVecraftClient({ baseUrl: "http://x", retry: { multiplier: 0.5 } })).toThrow(/multiplier/);
    expect(() => createVecraftClient({ baseUrl: "http://x", timeoutMs: -1 })).toThrow(/timeoutMs/);
  });
});
