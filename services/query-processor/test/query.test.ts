// The query processor over a real HTTP/2 server, with in-memory MetaService,
// JournalService and StorageService fakes: read targets per level, fan-out, merge,
// replica fallback, and clear failures.
import { afterEach, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { silentLogger } from "@vecraft/common";
import { encode } from "@vecraft/hlc";
import { shardOf } from "@vecraft/model";
import {
  CatalogSchema,
  CollectionSchema,
  Consistency,
  Metric,
  QueryService,
  StorageService,
  type ReadTarget,
  type StorageService as StorageServiceDesc,
} from "@vecraft/rpc";
import { loadQueryConfig, start } from "../src/index.js";
import { fakeJournal, fakeMeta, NOW_MS } from "./fakes.js";


interface FakeNode {
  calls: { method: string; shard: number; uid: string; read: ReadTarget | undefined }[];
  fail?: Code;
  /** The incarnation this node hosts, when it is not the catalog's: reads of another are NOT_FOUND, as a real node answers. */
  hosts?: string;
}

function checkUid(node: string, state: FakeNode, req: { uid: string; shard: number }): void {
  if (state.hosts !== undefined && req.uid !== "" && req.uid !== state.hosts) {
    throw new ConnectError(`storage node ${node} hosts shard ${req.shard} of collection c incarnation ${state.hosts}, not ${req.uid}`, Code.NotFound);
  }
}

function catalog(shards: number, replicas: string[][]) {
  return create(CatalogSchema, {
    revision: 1n,
    partitions: 2,
    collections: [
      {
        collection: create(CollectionSchema, { name: "c", dimension: 2, metric: Metric.COSINE, shards }),
        uid: "u1",
        shards: Array.from({ length: shards }, (_, s) => ({ shard: s, partition: s % 2, replicas: replicas[s] ?? [] })),
      },
    ],
    nodes: ["n1", "n2", "n3"].map((id) => ({ id, address: `http://${id}`, alive: true })),
  });
}

function fakeStorage(node: string, state: FakeNode): Client<typeof StorageServiceDesc> {
  return createClient(
    StorageService,
    createRouterTransport(({ service }) => {
      service(StorageService, {
        searchShard(req) {
          state.calls.push({ method: "search", shard: req.shard, uid: req.uid, read: req.read });
          checkUid(node, state, req);
          if (state.fail !== undefined) throw new ConnectError(`${node} is down`, state.fail);
          return {
            node,
            applied: { partition: req.shard % 2, offset: 10n, ts: encode(NOW_MS - 10 * (req.shard + 1), 0) },
            hits: [0, 1].map((i) => ({ id: `s${req.shard}-${i}`, score: 1 - (req.shard + i) / 10 })),
          };
        },
        getShardRecords(req) {
          state.calls.push({ method: "get", shard: req.shard, uid: req.uid, read: req.read });
          checkUid(node, state, req);
          return { records: req.ids.map((id) => ({ id, metadataJson: "{}" })), applied: { partition: 0, offset: 1n, ts: 5n } };
        },
        queryShard(req) {
          state.calls.push({ method: "query", shard: req.shard, uid: req.uid, read: req.read });
          checkUid(node, state, req);
          const ids = [`a${req.shard}`, `b${req.shard}`, `c${req.shard}`].filter((id) => id > req.afterId).slice(0, req.limit);
          return { records: ids.map((id) => ({ id })), applied: { partition: 0, offset: 1n, ts: 5n } };
        },
      });
    }),
  );
}

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

async function setup(shards: number, replicas: string[][], nodes: Record<string, FakeNode>) {
  const barrierCalls: number[][] = [];
  const meta = fakeMeta(() => catalog(shards, replicas));
  const journal = fakeJournal(barrierCalls);
  const clients = new Map(Object.entries(nodes).map(([id, st]) => [`http://${id}`, fakeStorage(id, st)]));
  const config = loadQueryConfig({ argv: ["--port", "0", "--default-wait-ms", "2000"], env: {} });
  const running = await start(config, {
    logger: silentLogger,
    meta,
    journal,
    storageFor: (address) => clients.get(address)!,
    clock: { now: () => NOW_MS },
  });
  stops.push(() => running.stop());
  const client = createClient(QueryService, createGrpcTransport({ baseUrl: running.url }));
  return { client, barrierCalls };
}

const vector = new Uint8Array(Float32Array.from([1, 0]).buffer);

describe("QueryService", () => {
  it("fans out to every shard and merges the top k by score, ties by id", async () => {
    const n1: FakeNode = { calls: [] };
    const { client } = await setup(3, [["n1"], ["n1"], ["n1"]], { n1 });
    const res = await client.search({ collection: "c", vectorF32: vector, k: 4, consistency: { level: Consistency.EVENTUAL } });
    expect(res.hits.map((h) => h.id)).toEqual(["s0-0", "s0-1", "s1-0", "s1-1"]);
    expect(new Set(n1.calls.map((c) => c.shard))).toEqual(new Set([0, 1, 2]));
    // EVENTUAL reports the oldest applied ts it actually saw.
    expect(res.read?.readTs).toBe(encode(NOW_MS - 30, 0));
    // ...and the newest it saw, so a session token never goes back (monotonic reads).
    expect(res.read?.observedTs).toBe(encode(NOW_MS - 10, 0));
  });

  it("turns each level into a read target", async () => {
    const n1: FakeNode = { calls: [] };
    const { client, barrierCalls } = await setup(2, [["n1"], ["n1"]], { n1 });
    const strong = await client.search({ collection: "c", vectorF32: vector, k: 1, consistency: { level: Consistency.STRONG } });
    expect(barrierCalls).toEqual([[0, 1]]);
    expect(n1.calls.map((c) => c.read?.minOffset).sort()).toEqual([100n, 101n]);
    expect(strong.read?.readTs).toBe(encode(NOW_MS + 1, 0));
    n1.calls.length = 0;
    const bounded = await client.search({ collection: "c", vectorF32: vector, k: 1, consistency: { level: Consistency.BOUNDED, stalenessMs: 250 } });
    expect(bounded.read?.readTs).toBe(encode(NOW_MS - 250, 0));
    expect(n1.calls.every((c) => c.read?.minTs === encode(NOW_MS - 250, 0))).toBe(true);
    n1.calls.length = 0;
    const dflt = await client.search({ collection: "c", vectorF32: vector, k: 1 });
    expect(dflt.read?.level).toBe(Consistency.BOUNDED);
    expect(dflt.read?.readTs).toBe(encode(NOW_MS - 1000, 0));
    n1.calls.length = 0;
    const token = encode(NOW_MS - 5, 3);
    const session = await client.search({ collection: "c", vectorF32: vector, k: 1, consistency: { level: Consistency.SESSION, sessionToken: String(token) } });
    expect(session.read?.readTs).toBe(token);
    expect(n1.calls.every((c) => c.read?.minTs === token)).toBe(true);
    await expect(client.search({ collection: "c", vectorF32: vector, k: 1, consistency: { level: Consistency.SESSION, sessionToken: "nope" } })).rejects.toMatchObject({
      code: Code.InvalidArgument,
    });
  });

  it("tries another replica when one is down, and fails clearly when none can answer", async () => {
    const n1: FakeNode = { calls: [], fail: Code.Unavailable };
    const n2: FakeNode = { calls: [] };
    const { client } = await setup(1, [["n1", "n2"]], { n1, n2 });
    for (let i = 0; i < 4; i++) {
      const res = await client.search({ collection: "c", vectorF32: vector, k: 1, consistency: { level: Consistency.EVENTUAL } });
      expect(res.hits).toHaveLength(1);
    }
    n2.fail = Code.DeadlineExceeded;
    const err = await client.search({ collection: "c", vectorF32: vector, k: 1, consistency: { level: Consistency.EVENTUAL } }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    // Both failures are named; a replica that could not reach the read target in time
    // decides the code (the caller can wait or read less fresh).
    expect((err as ConnectError).rawMessage).toMatch(/^shard 0: no replica could answer \(.*n2: n2 is down/);
    expect((err as ConnectError).rawMessage).toMatch(/n1: n1 is down/);
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    const partial = await client.search({ collection: "c", vectorF32: vector, k: 1, allowPartialResults: true, consistency: { level: Consistency.EVENTUAL } });
    expect(partial.missingShards).toEqual([0]);
  });

  it("routes Get by shard and merges Query pages in id order", async () => {
    const n1: FakeNode = { calls: [] };
    const { client } = await setup(2, [["n1"], ["n1"]], { n1 });
    const ids = ["x", "y", "z", "w"];
    const got = await client.get({ collection: "c", ids, consistency: { level: Consistency.EVENTUAL } });
    expect(got.records.map((r) => r.id)).toEqual(ids);
    for (const c of n1.calls) expect(c.method).toBe("get");
    expect(new Set(n1.calls.map((c) => c.shard))).toEqual(new Set(ids.map((id) => shardOf(id, 2))));
    const page1 = await client.query({ collection: "c", limit: 3, consistency: { level: Consistency.EVENTUAL } });
    expect(page1.records.map((r) => r.id)).toEqual(["a0", "a1", "b0"]);
    expect(page1.hasMore).toBe(true);
    const page2 = await client.query({ collection: "c", limit: 3, afterId: "b0", consistency: { level: Consistency.EVENTUAL } });
    expect(page2.records.map((r) => r.id)).toEqual(["b1", "c0", "c1"]);
  });

  it("names the collection's incarnation (catalog uid) in every storage read, and reads past a replica of another", async () => {
    // n1 still hosts an earlier incarnation of "c" (dropped and recreated): it answers NOT_FOUND.
    const n1: FakeNode = { calls: [], hosts: "u0" };
    const n2: FakeNode = { calls: [] };
    const { client } = await setup(2, [["n1", "n2"], ["n1", "n2"]], { n1, n2 });
    for (let i = 0; i < 4; i++) {
      const res = await client.search({ collection: "c", vectorF32: vector, k: 4, consistency: { level: Consistency.EVENTUAL } });
      expect(res.hits).toHaveLength(4);
    }
    const got = await client.get({ collection: "c", ids: ["x", "y", "z", "w"], consistency: { level: Consistency.EVENTUAL } });
    expect(got.records).toHaveLength(4);
    const page = await client.query({ collection: "c", limit: 10, consistency: { level: Consistency.EVENTUAL } });
    expect(page.records).toHaveLength(6);
    const calls = [...n1.calls, ...n2.calls];
    expect(new Set(calls.map((c) => c.method))).toEqual(new Set(["search", "get", "query"]));
    expect(calls.every((c) => c.uid === "u1")).toBe(true);
    // NOT_FOUND says nothing about n1's health: it is not cooled down, and keeps being asked.
    expect(n1.calls.filter((c) => c.method === "search").length).toBeGreaterThan(2);
  });

  it("rejects bad requests with a message naming the problem", async () => {
    const { client } = await setup(1, [["n1"]], { n1: { calls: [] } });
    await expect(client.search({ collection: "c", vectorF32: vector, k: 0 })).rejects.toThrow(/k: must be between 1 and 1000/);
    await expect(client.search({ collection: "c", vectorF32: new Uint8Array(12), k: 1 })).rejects.toThrow(/expected 2 dimensions, got 3/);
    await expect(client.search({ collection: "missing", vectorF32: vector, k: 1 })).rejects.toMatchObject({ code: Code.NotFound });
  });
});
