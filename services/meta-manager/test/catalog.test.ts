// The catalog domain over a real embedded store (manual clock) and a fake journal.
import { fromBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger, silentLogger } from "@vecraft/common";
import { CollectionSchema, CollectionState, DdlOp, Metric, NodeRole, type Catalog as CatalogMessage, type Collection } from "@vecraft/rpc";
import { create } from "@bufbuild/protobuf";
import { Catalog, ddlProducerId, partitionOf, type CatalogOptions, type MetaStore } from "../src/index.js";
import { journalDdl } from "../src/ddl.js";
import { catalogKeys, decodeNode } from "../src/records.js";
import { FakeJournal } from "./fake-journal.js";
import { eventually, testStore, type TestStore } from "./helpers.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const signal = (): AbortSignal => AbortSignal.timeout(20_000);
const origin = { requestId: "req-1", principal: "admin" };

function spec(name: string, shards = 1, replicationFactor = 1): Collection {
  return create(CollectionSchema, { name, dimension: 4, metric: Metric.COSINE, shards, replicationFactor, hnsw: { m: 16, efConstruction: 128, efSearch: 64 } });
}

interface Setup {
  catalog: Catalog;
  journal: FakeJournal;
  t: TestStore;
  counters: { conflicts: number; appends: string[] };
}

async function open(
  opts: { partitions?: number; journal?: FakeJournal; t?: TestStore; store?: MetaStore; overrides?: Partial<CatalogOptions> } = {},
): Promise<Setup> {
  const partitions = opts.partitions ?? 4;
  let t = opts.t;
  if (t === undefined) {
    const fresh = await testStore();
    cleanups.push(() => fresh.cleanup());
    t = fresh;
  }
  const journal = opts.journal ?? new FakeJournal(partitions);
  const counters = { conflicts: 0, appends: [] as string[] };
  const catalog = await Catalog.open({
    store: opts.store ?? t.store,
    journal: journalDdl(journal.client(), { attemptTimeoutMs: 2_000 }),
    partitions,
    journalAddress: "http://journal.test:7100",
    logger: silentLogger,
    defaultNodeLeaseTtlMs: 1_000,
    maxCollections: 100,
    maxNodes: 100,
    maxWatchStreams: 8,
    watchCoalesceMs: 0,
    ddlRetryBudgetMs: 300,
    reconcileIntervalMs: 0,
    observer: {
      casConflict: () => counters.conflicts++,
      ddlAppend: (op, outcome) => counters.appends.push(`${op}:${outcome}`),
    },
    ...opts.overrides,
  });
  cleanups.push(() => catalog.close());
  return { catalog, journal, t, counters };
}

async function storageNodes(catalog: Catalog, ids: string[], ttlMs = 1_000): Promise<Map<string, string>> {
  const leases = new Map<string, string>();
  for (const id of ids) {
    const { leaseId } = await catalog.registerNode({ id, roles: [NodeRole.STORAGE], address: `http://${id}.test:7300` }, ttlMs, signal());
    leases.set(id, leaseId);
  }
  return leases;
}

async function pull(it: AsyncIterator<CatalogMessage>): Promise<CatalogMessage> {
  const r = await it.next();
  if (r.done === true) throw new Error("the watch ended");
  return r.value;
}

async function codeOf(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: Code; message: string };
    return { code: err.code ?? Code.Unknown, message: err.message };
  }
  throw new Error("expected a failure");
}

describe("placement", () => {
  it("maps shards to consecutive partitions from a stable hash of the name", () => {
    // FNV-1a 32 reference values: "" -> 0x811c9dc5, "a" -> 0xe40c292c, "foobar" -> 0xbf9cf968.
    expect(partitionOf("a", 0, 1 << 30)).toBe(0xe40c292c % (1 << 30));
    expect(partitionOf("foobar", 0, 1000)).toBe(0xbf9cf968 % 1000);
    expect(partitionOf("foobar", 3, 1000)).toBe((0xbf9cf968 + 3) % 1000);
    const parts = Array.from({ length: 4 }, (_, s) => partitionOf("books", s, 4));
    expect(new Set(parts).size).toBe(4);
  });

  it("spreads replicas over alive storage nodes, round-robin by load, never on other roles", async () => {
    const { catalog, journal } = await open();
    await storageNodes(catalog, ["s1", "s2", "s3"]);
    await catalog.registerNode({ id: "gw", roles: [NodeRole.GATEWAY], address: "http://gw.test:8080" }, 1_000, signal());
    const out = await catalog.createCollection(spec("books", 6, 2), origin, signal());
    const shards = out.collection.shards;
    expect(shards.map((s) => s.shard)).toEqual([0, 1, 2, 3, 4, 5]);
    for (const s of shards) {
      expect(s.partition).toBe(partitionOf("books", s.shard, 4));
      expect(new Set(s.replicas).size).toBe(2);
      expect(s.replicas).not.toContain("gw");
    }
    const load = new Map<string, number>();
    for (const s of shards) for (const r of s.replicas) load.set(r, (load.get(r) ?? 0) + 1);
    expect([...load.entries()].sort()).toEqual([
      ["s1", 4],
      ["s2", 4],
      ["s3", 4],
    ]);
    // The next collection starts on the least loaded nodes: the load is catalog-wide.
    await storageNodes(catalog, ["s4"]);
    const next = await catalog.createCollection(spec("films", 1, 1), origin, signal());
    expect(next.collection.shards[0]!.replicas).toEqual(["s4"]);
    expect(journal.allDdl()).toHaveLength(new Set(shards.map((s) => s.partition)).size + 1);
  });

  it("skips storage nodes whose lease expired", async () => {
    const { catalog, t } = await open();
    const leases = await storageNodes(catalog, ["s1", "s2", "s3"]);
    t.clock.advance(600);
    expect(await catalog.heartbeat(leases.get("s1")!, signal())).toBe(true);
    expect(await catalog.heartbeat(leases.get("s3")!, signal())).toBe(true);
    t.clock.advance(600); // s2 missed its heartbeat
    const out = await catalog.createCollection(spec("books", 4, 2), origin, signal());
    expect(new Set(out.collection.shards.flatMap((s) => s.replicas))).toEqual(new Set(["s1", "s3"]));
    const cat = await catalog.getCatalog(signal());
    expect(cat.nodes.map((n) => [n.id, n.alive])).toEqual([
      ["s1", true],
      ["s2", false],
      ["s3", true],
    ]);
  });

  it("fails clearly, writing nothing, when fewer storage nodes are alive than the replication factor", async () => {
    const { catalog, journal } = await open();
    await storageNodes(catalog, ["s1", "s2"]);
    const before = await catalog.getCatalog(signal());
    const err = await codeOf(catalog.createCollection(spec("books", 2, 3), origin, signal()));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.message).toBe(
      'collection "books" needs 3 replicas per shard (replication_factor 3) but only 2 storage nodes are alive (s1, s2); start more storage nodes or lower replication_factor',
    );
    const none = await open();
    expect((await codeOf(none.catalog.createCollection(spec("x"), origin, signal()))).message).toMatch(/no storage node is alive/);
    const after = await catalog.getCatalog(signal());
    expect(after.revision).toBe(before.revision);
    expect(after.collections).toHaveLength(0);
    expect(journal.calls).toHaveLength(0);
  });
});

describe("create and drop", () => {
  it("journals one CREATE entry per partition hosting shards, durable before it returns, then READY", async () => {
    const { catalog, journal } = await open({ partitions: 3 });
    await storageNodes(catalog, ["s1", "s2"]);
    const input = spec("books", 5, 2);
    const out = await catalog.createCollection(input, { requestId: "r-create", principal: "alice" }, signal());
    const c = out.collection;
    expect(c.state).toBe(CollectionState.READY);
    expect(c.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(c.createdRevision).toBeGreaterThan(0n);
    const entries = journal.allDdl();
    const byPartition = new Map<number, number[]>();
    for (const s of c.shards) byPartition.set(s.partition, [...(byPartition.get(s.partition) ?? []), s.shard]);
    expect(entries.map((e) => e.partition).sort()).toEqual([...byPartition.keys()].sort());
    for (const e of entries) {
      expect(e.ddl).toMatchObject({ collection: "books", op: DdlOp.CREATE_COLLECTION, uid: c.uid, requestId: "r-create", principal: "alice" });
      expect(e.ddl.shards).toEqual(byPartition.get(e.partition));
      // Each shard of the entry names the storage nodes placed to host it.
      expect(e.ddl.replicas.map((r) => ({ shard: r.shard, nodes: r.nodes }))).toEqual(
        byPartition.get(e.partition)!.map((shard) => ({ shard, nodes: c.shards.find((s) => s.shard === shard)!.replicas })),
      );
      for (const r of e.ddl.replicas) expect(r.nodes).toHaveLength(2);
      const decoded = fromBinary(CollectionSchema, e.ddl.spec);
      expect(decoded.name).toBe("books");
      expect(decoded.shards).toBe(5);
      expect(decoded.createdTs).toBe(0n);
    }
    for (const call of journal.calls) {
      expect(call.producerId).toBe(ddlProducerId(c.uid, DdlOp.CREATE_COLLECTION));
      expect(call.seq).toBe(1n);
    }
    // created_ts is the largest DDL entry ts.
    expect(c.collection!.createdTs).toBe(entries.map((e) => e.ts).reduce((a, b) => (a > b ? a : b)));
    const cat = await catalog.getCatalog(signal());
    expect(cat.revision).toBe(BigInt(out.revision));
    expect(cat.collections.map((x) => x.uid)).toEqual([c.uid]);
    expect(cat.collections[0]!.collection!.createdTs).toBe(c.collection!.createdTs);
    expect(cat.pendingCollections).toHaveLength(0);
    expect(cat.partitions).toBe(3);
    expect(cat.journalAddress).toBe("http://journal.test:7100");
  });

  it("rejects a second create of the same name, and bad specs", async () => {
    const { catalog } = await open();
    await storageNodes(catalog, ["s1"]);
    await catalog.createCollection(spec("books"), origin, signal());
    const dup = await codeOf(catalog.createCollection(spec("books"), origin, signal()));
    expect(dup).toEqual({ code: Code.AlreadyExists, message: 'collection "books" already exists' });
    expect((await codeOf(catalog.createCollection(spec("9bad"), origin, signal()))).code).toBe(Code.InvalidArgument);
    expect((await codeOf(catalog.createCollection(spec("zero", 0), origin, signal()))).message).toMatch(/collection\.shards/);
    expect((await codeOf(catalog.createCollection(spec("norf", 1, 0), origin, signal()))).message).toMatch(/replication_factor/);
  });

  it("drops: journals DROP entries to the same partitions, then removes it; NOT_FOUND when missing", async () => {
    const { catalog, journal } = await open();
    await storageNodes(catalog, ["s1", "s2"]);
    const created = await catalog.createCollection(spec("books", 3, 1), origin, signal());
    const createParts = journal
      .allDdl()
      .map((e) => e.partition)
      .sort();
    const dropped = await catalog.dropCollection("books", { requestId: "r-drop", principal: "bob" }, signal());
    expect(dropped.collection.uid).toBe(created.collection.uid);
    expect(dropped.revision).toBeGreaterThan(created.revision);
    const drops = journal.allDdl().filter((e) => e.ddl.op === DdlOp.DROP_COLLECTION);
    expect(drops.map((e) => e.partition).sort()).toEqual(createParts);
    for (const d of drops) expect(d.ddl).toMatchObject({ collection: "books", uid: created.collection.uid, requestId: "r-drop", principal: "bob", replicas: [] });
    const cat = await catalog.getCatalog(signal());
    expect(cat.collections).toHaveLength(0);
    expect(cat.revision).toBe(BigInt(dropped.revision));
    expect(await codeOf(catalog.dropCollection("books", origin, signal()))).toEqual({ code: Code.NotFound, message: 'collection "books" does not exist' });
    expect((await codeOf(catalog.dropCollection("never", origin, signal()))).code).toBe(Code.NotFound);
    // The name can be reused: a new incarnation with a new uid.
    const again = await catalog.createCollection(spec("books", 3, 1), origin, signal());
    expect(again.collection.uid).not.toBe(created.collection.uid);
  });

  it("retries a lost compare-and-swap with a fresh read", async () => {
    const t = await testStore();
    cleanups.push(() => t.cleanup());
    let interfere = 1;
    // A store whose first catalog transaction loses to a concurrent writer.
    const racy: MetaStore = new Proxy(t.store, {
      get(target, prop, receiver) {
        if (prop === "txn") {
          return async (req: Parameters<MetaStore["txn"]>[0], o?: Parameters<MetaStore["txn"]>[1]) => {
            if (interfere > 0 && req.puts?.some((p) => p.key.endsWith("catalog/version"))) {
              interfere--;
              await target.txn({ puts: [{ key: "/vecraft/meta/catalog/version", value: new Uint8Array(0) }] });
            }
            return target.txn(req, o);
          };
        }
        const v: unknown = Reflect.get(target, prop, receiver);
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const { catalog, counters } = await open({ t, store: racy });
    await storageNodes(catalog, ["s1"]);
    const out = await catalog.createCollection(spec("books"), origin, signal());
    expect(out.collection.state).toBe(CollectionState.READY);
    expect(counters.conflicts).toBe(1);
  });

  it("concurrent creates serialize on the catalog version: each sees the other's load", async () => {
    const { catalog, counters } = await open();
    await storageNodes(catalog, ["s1", "s2", "s3", "s4"]);
    const outs = await Promise.all(["a", "b", "c", "d"].map((n) => catalog.createCollection(spec(n, 1, 1), origin, signal())));
    expect(new Set(outs.map((o) => o.collection.shards[0]!.replicas[0])).size).toBe(4);
    expect(counters.conflicts).toBeGreaterThan(0);
  });
});

describe("crash safety", () => {
  it("a create interrupted after the catalog CAS is finished by a fresh catalog over the same store file", async () => {
    const t = await testStore();
    cleanups.push(() => t.cleanup());
    const journal = new FakeJournal(4);
    const first = await open({ t, journal });
    await storageNodes(first.catalog, ["s1", "s2"]);
    // Partition of shard 1 is down: shard 0's partition gets its entry, the other does not.
    const down = partitionOf("books", 1, 4);
    journal.fault = ({ partition }) => (partition === down ? Code.Unavailable : undefined);
    const err = await codeOf(first.catalog.createCollection(spec("books", 2, 1), origin, signal()));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.message).toMatch(/it stays CREATING: retrying the request resumes it/);
    const pending = await first.catalog.getCatalog(signal());
    expect(pending.collections).toHaveLength(0);
    expect(pending.pendingCollections.map((c) => [c.collection!.name, c.state])).toEqual([["books", CollectionState.CREATING]]);
    const uid = pending.pendingCollections[0]!.uid;
    expect(journal.ddl(down)).toHaveLength(0);

    // "Crash": the process goes away; a new one opens the same file.
    await first.catalog.close();
    await t.reopen();
    journal.fault = undefined;
    const second = await open({ t, journal });
    const ready = await eventually(
      async () => {
        const c = await second.catalog.getCatalog(signal());
        return c.collections[0];
      },
      5_000,
      "the startup pass to finish the create",
    );
    expect(ready.uid).toBe(uid);
    expect(ready.state).toBe(CollectionState.READY);
    // Exactly one CREATE entry per partition: the re-append to the partition that had it was deduplicated.
    const parts = [partitionOf("books", 0, 4), down];
    for (const p of new Set(parts)) expect(journal.ddl(p).filter((d) => d.uid === uid)).toHaveLength(1);
    expect(second.counters.appends).toContain("create:deduplicated");
    expect(journal.calls.some((c) => c.outcome === "deduplicated")).toBe(true);
    expect(ready.collection!.createdTs).toBe(
      journal
        .allDdl()
        .filter((e) => e.ddl.uid === uid)
        .map((e) => e.ts)
        .reduce((a, b) => (a > b ? a : b)),
    );
  });

  it("a retry of an interrupted create resumes it; a different spec is refused", async () => {
    const { catalog, journal } = await open();
    await storageNodes(catalog, ["s1"]);
    journal.fault = () => Code.Unavailable;
    expect((await codeOf(catalog.createCollection(spec("books", 2), origin, signal()))).code).toBe(Code.Unavailable);
    journal.fault = undefined;
    expect(await codeOf(catalog.createCollection(spec("books", 3), origin, signal()))).toEqual({
      code: Code.AlreadyExists,
      message: 'collection "books" is being created with a different spec',
    });
    const out = await catalog.createCollection(spec("books", 2), origin, signal());
    expect(out.collection.state).toBe(CollectionState.READY);
    expect(journal.allDdl().filter((e) => e.ddl.uid === out.collection.uid).length).toBe(new Set(out.collection.shards.map((s) => s.partition)).size);
  });

  it("a drop interrupted after DROPPING is finished on restart; the name is not reusable until it is", async () => {
    const t = await testStore();
    cleanups.push(() => t.cleanup());
    const journal = new FakeJournal(4);
    const first = await open({ t, journal });
    await storageNodes(first.catalog, ["s1"]);
    const created = await first.catalog.createCollection(spec("books", 4), origin, signal());
    journal.fault = ({ ddl }) => (ddl?.op === DdlOp.DROP_COLLECTION ? Code.Unavailable : undefined);
    expect((await codeOf(first.catalog.dropCollection("books", origin, signal()))).code).toBe(Code.Unavailable);
    const mid = await first.catalog.getCatalog(signal());
    expect(mid.collections).toHaveLength(0); // no longer live
    expect(mid.pendingCollections[0]!.state).toBe(CollectionState.DROPPING);
    await first.catalog.close();
    await t.reopen();
    journal.fault = undefined;
    const second = await open({ t, journal, overrides: { reconcileIntervalMs: 60_000 } });
    expect(await second.catalog.reconcile(signal())).toEqual({ completed: 1, remaining: 0 });
    const after = await second.catalog.getCatalog(signal());
    expect(after.collections).toHaveLength(0);
    expect(after.pendingCollections).toHaveLength(0);
    const drops = journal.allDdl().filter((e) => e.ddl.op === DdlOp.DROP_COLLECTION);
    expect(drops).toHaveLength(new Set(created.collection.shards.map((s) => s.partition)).size);
  });

  it("a create of a name still DROPPING finishes the drop first; a drop of one still CREATING finishes the create first", async () => {
    const { catalog, journal } = await open();
    await storageNodes(catalog, ["s1"]);
    const old = await catalog.createCollection(spec("books"), origin, signal());
    journal.fault = () => Code.Unavailable;
    await codeOf(catalog.dropCollection("books", origin, signal()));
    journal.fault = undefined;
    const fresh = await catalog.createCollection(spec("books"), origin, signal());
    expect(fresh.collection.uid).not.toBe(old.collection.uid);
    const ops = journal.allDdl().map((e) => [e.ddl.uid === old.collection.uid ? "old" : "new", e.ddl.op]);
    expect(ops).toEqual([
      ["old", DdlOp.CREATE_COLLECTION],
      ["old", DdlOp.DROP_COLLECTION],
      ["new", DdlOp.CREATE_COLLECTION],
    ]);

    journal.fault = () => Code.Unavailable;
    await codeOf(catalog.createCollection(spec("films"), origin, signal()));
    journal.fault = undefined;
    await catalog.dropCollection("films", origin, signal());
    const films = journal
      .allDdl()
      .filter((e) => e.ddl.collection === "films")
      .map((e) => e.ddl.op);
    expect(films).toEqual([DdlOp.CREATE_COLLECTION, DdlOp.DROP_COLLECTION]);
  });

  it("reports a journal that rejects the entry as an internal error, keeping the collection CREATING", async () => {
    const { catalog, journal } = await open();
    await storageNodes(catalog, ["s1"]);
    journal.fault = () => Code.InvalidArgument;
    const err = await codeOf(catalog.createCollection(spec("books"), origin, signal()));
    expect(err.code).toBe(Code.Internal);
    expect(err.message).toMatch(/rejected the create entry.*it stays CREATING/);
    expect(journal.calls).toHaveLength(1); // not retried
    expect((await catalog.getCatalog(signal())).pendingCollections).toHaveLength(1);
  });

  it("refuses to open with a partition count other than the one the catalog was created with", async () => {
    const t = await testStore();
    cleanups.push(() => t.cleanup());
    const first = await open({ t, partitions: 4 });
    await first.catalog.close();
    await expect(open({ t, partitions: 8 })).rejects.toMatchObject({
      code: Code.FailedPrecondition,
      message: expect.stringMatching(/created for 4 journal partitions but partitions is 8/) as unknown,
    });
  });
});

describe("nodes", () => {
  it("binds liveness to a lease: heartbeats keep it, a missed ttl ends it, re-registration replaces it", async () => {
    const { catalog, t } = await open();
    const { leaseId } = await catalog.registerNode({ id: "s1", roles: [NodeRole.STORAGE, NodeRole.STORAGE], address: "http://s1.test:7300" }, 0, signal());
    let cat = await catalog.getCatalog(signal());
    expect(cat.nodes).toHaveLength(1);
    expect(cat.nodes[0]).toMatchObject({ id: "s1", roles: [NodeRole.STORAGE], address: "http://s1.test:7300", alive: true });
    t.clock.advance(900);
    expect(await catalog.heartbeat(leaseId, signal())).toBe(true);
    t.clock.advance(900);
    expect((await catalog.getCatalog(signal())).nodes[0]!.alive).toBe(true);
    t.clock.advance(200);
    expect((await catalog.getCatalog(signal())).nodes[0]!.alive).toBe(false);
    expect(await catalog.heartbeat(leaseId, signal())).toBe(false);
    const second = await catalog.registerNode({ id: "s1", roles: [NodeRole.STORAGE], address: "http://s1.test:7301" }, 5_000, signal());
    const third = await catalog.registerNode({ id: "s1", roles: [NodeRole.STORAGE], address: "http://s1.test:7302" }, 5_000, signal());
    expect(await catalog.heartbeat(second.leaseId, signal())).toBe(false); // replaced
    expect(await catalog.heartbeat(third.leaseId, signal())).toBe(true);
    cat = await catalog.getCatalog(signal());
    expect(cat.nodes.map((n) => [n.id, n.address, n.alive])).toEqual([["s1", "http://s1.test:7302", true]]);
  });

  it("records the lease TTL granted in the node record; records written before it decode without one", async () => {
    const { catalog, t } = await open();
    const keys = catalogKeys();
    const ttlOf = async (id: string): Promise<number | undefined> => {
      const kv = (await t.store.get(keys.node(id)))!;
      return decodeNode(kv.key, kv.value).ttlMs;
    };
    await catalog.registerNode({ id: "s1", roles: [NodeRole.STORAGE], address: "http://s1.test:7300" }, 0, signal());
    await catalog.registerNode({ id: "s2", roles: [NodeRole.STORAGE], address: "http://s2.test:7300" }, 120_000, signal());
    expect(await ttlOf("s1")).toBe(1_000); // the default
    expect(await ttlOf("s2")).toBe(120_000);
    const old = new TextEncoder().encode(JSON.stringify({ v: 1, id: "s3", roles: ["STORAGE"], address: "http://s3.test:7300", registeredAtMs: 5 }));
    expect(decodeNode("nodes/s3", old)).toEqual({ id: "s3", roles: [NodeRole.STORAGE], address: "http://s3.test:7300", registeredAtMs: 5 });
    const bad = new TextEncoder().encode(JSON.stringify({ v: 1, id: "s3", roles: ["STORAGE"], address: "http://s3.test:7300", registeredAtMs: 5, ttlMs: "1s" }));
    expect(() => decodeNode("nodes/s3", bad)).toThrow(/ttlMs/);
  });

  it("validates registrations and bounds the registry", async () => {
    const { catalog } = await open({ overrides: { maxNodes: 2 } });
    const bad: [Parameters<Catalog["registerNode"]>[0], number, RegExp][] = [
      [{ id: "", roles: [NodeRole.STORAGE], address: "http://a:1" }, 0, /node\.id/],
      [{ id: "a/b", roles: [NodeRole.STORAGE], address: "http://a:1" }, 0, /node\.id/],
      [{ id: "a", roles: [], address: "http://a:1" }, 0, /node\.roles/],
      [{ id: "a", roles: [NodeRole.UNSPECIFIED], address: "http://a:1" }, 0, /node\.roles\[0\]/],
      [{ id: "a", roles: [NodeRole.STORAGE], address: "not a url" }, 0, /node\.address/],
      [{ id: "a", roles: [NodeRole.STORAGE], address: "ftp://a" }, 0, /http or https/],
      [{ id: "a", roles: [NodeRole.STORAGE], address: "http://a:1" }, 5, /ttl_ms/],
    ];
    for (const [node, ttl, msg] of bad) {
      const err = await codeOf(catalog.registerNode(node, ttl, signal()));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.message).toMatch(msg);
    }
    await storageNodes(catalog, ["a", "b"]);
    expect((await codeOf(storageNodes(catalog, ["c"]))).code).toBe(Code.ResourceExhausted);
    await storageNodes(catalog, ["a"]); // re-registering a known node is fine
    expect((await codeOf(catalog.heartbeat("", signal()))).code).toBe(Code.InvalidArgument);
  });
});

describe("watch", () => {
  it("sends the catalog now, then newer revisions, coalescing what the consumer did not pull", async () => {
    const { catalog } = await open();
    await storageNodes(catalog, ["s1"]);
    const ac = new AbortController();
    const it = catalog.watch(0n, ac.signal)[Symbol.asyncIterator]();
    const first = await pull(it);
    expect(first.nodes).toHaveLength(1);
    // Three changes while the consumer is not pulling: it then gets the newest catalog.
    await catalog.createCollection(spec("a"), origin, signal());
    await catalog.createCollection(spec("b"), origin, signal());
    const last = await catalog.createCollection(spec("c"), origin, signal());
    let seen = first;
    while (seen.revision < BigInt(last.revision)) {
      const next = await pull(it);
      expect(next.revision).toBeGreaterThan(seen.revision);
      seen = next;
    }
    expect(seen.collections.map((c) => c.collection!.name)).toEqual(["a", "b", "c"]);
    // after_revision: nothing until the catalog moves past it.
    const later = catalog.watch(seen.revision, ac.signal)[Symbol.asyncIterator]();
    const pending = later.next();
    await catalog.dropCollection("a", origin, signal());
    const r = await pending;
    if (r.done === true) throw new Error("the watch ended");
    const moved = r.value;
    expect(moved.revision).toBeGreaterThan(seen.revision);
    expect(moved.collections.map((c) => c.collection!.name)).not.toContain("a");
    ac.abort();
    await expect(it.next()).rejects.toBeDefined();
  });

  it("a snapshot listener that throws is logged and keeps neither the other listeners nor the streams from the snapshot", async () => {
    const lines: string[] = [];
    const logger = createLogger({ name: "test", level: "error", stream: { write: (l: string) => lines.push(l) } });
    const { catalog } = await open({ overrides: { logger } });
    const seen: bigint[] = [];
    catalog.onSnapshot(() => {
      throw new Error("listener bug");
    });
    catalog.onSnapshot((c) => seen.push(c.revision));
    const ac = new AbortController();
    const it = catalog.watch(0n, ac.signal)[Symbol.asyncIterator]();
    const first = await pull(it);
    await storageNodes(catalog, ["s1"]);
    const next = await pull(it);
    expect(next.revision).toBeGreaterThan(first.revision);
    expect(next.nodes.map((n) => n.id)).toEqual(["s1"]);
    expect(seen).toContain(next.revision);
    expect(lines.some((l) => l.includes("catalog feed listener failed") && l.includes("listener bug"))).toBe(true);
    ac.abort();
  });

  it("reports lease expiry to watchers and bounds the streams", async () => {
    const { catalog, t } = await open({ overrides: { maxWatchStreams: 1 } });
    await storageNodes(catalog, ["s1"]);
    const ac = new AbortController();
    const it = catalog.watch(0n, ac.signal)[Symbol.asyncIterator]();
    expect((await pull(it)).nodes[0]!.alive).toBe(true);
    const second = catalog.watch(0n, ac.signal)[Symbol.asyncIterator]();
    expect((await codeOf(second.next())).code).toBe(Code.ResourceExhausted);
    t.clock.advance(1_001);
    const next = await pull(it);
    expect(next.nodes[0]!.alive).toBe(false);
    ac.abort();
  });
});
