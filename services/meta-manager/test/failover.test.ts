// The failover controller: the pure replacement rule (placement.ts), then the controller
// inside a real meta-manager (start()) over the embedded store on a manual clock, so lease
// expiry, the grace and the recovery grace are exact. An unreachable store is simulated by
// a wrapper that fails calls with UnavailableError, as the etcd store does (the real etcd
// outage is in failover-etcd.test.ts). The storage nodes' GetStorageStatus is a fake
// (fake-storage.ts): every listed replica serves unless a test says otherwise.
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import fc from "fast-check";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "@vecraft/common";
import { CollectionSchema, Metric, NodeRole, ReplicaState, type Catalog as CatalogMessage, type Collection } from "@vecraft/rpc";
import { leastLoaded, loadMetaConfig, planRepairs, replicaKey, start, type PlacedShard, type RepairInput, type RepairPlan, type RunningMeta } from "../src/index.js";
import { catalogKeys, decodeCollection, encodeCollection } from "../src/records.js";
import { FakeJournal } from "./fake-journal.js";
import { FakeStorage } from "./fake-storage.js";
import { FlakyStore, eventually, testStore, type TestStore } from "./helpers.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const signal = (): AbortSignal => AbortSignal.timeout(20_000);
const origin = { requestId: "r", principal: "admin" };

function spec(name: string, shards: number, replicationFactor: number): Collection {
  return create(CollectionSchema, { name, dimension: 4, metric: Metric.L2, shards, replicationFactor, hnsw: { m: 16, efConstruction: 128, efSearch: 64 } });
}

/** Every listed replica of `shards` (of collection "c") as serving; the planner itself only counts the alive ones. */
function allServing(shards: readonly PlacedShard[]): Set<string> {
  return new Set(shards.flatMap((s) => s.replicas.map((r) => replicaKey("c", s.shard, r))));
}

/** planRepairs for collection "c", every listed replica serving unless `serving` is given. */
function plan(input: Omit<RepairInput, "collection" | "serving"> & { serving?: ReadonlySet<string> }): RepairPlan {
  return planRepairs({ collection: "c", ...input, serving: input.serving ?? allServing(input.shards) });
}

describe("replacement rule (pure)", () => {
  it("picks the least loaded node not excluded, ties by node id", () => {
    const load = new Map([
      ["c", 1],
      ["b", 0],
      ["a", 0],
      ["d", 5],
    ]);
    expect(leastLoaded(load, [])).toBe("a");
    expect(leastLoaded(load, ["a"])).toBe("b");
    expect(leastLoaded(load, ["a", "b"])).toBe("c");
    expect(leastLoaded(load, ["a", "b", "c", "d"])).toBeUndefined();
  });

  it("replaces only replaceable replicas, in place, spreading over the least loaded nodes; then tops up", () => {
    const shards: PlacedShard[] = [
      { shard: 0, partition: 0, replicas: ["dead", "n1"] },
      { shard: 1, partition: 1, replicas: ["n2", "dead"] },
      { shard: 2, partition: 2, replicas: ["n1", "n2"] },
      { shard: 3, partition: 3, replicas: ["n3"] },
    ];
    const load = new Map([
      ["n1", 2],
      ["n2", 2],
      ["n3", 1],
      ["n4", 0],
    ]);
    const p = plan({ shards, replicationFactor: 2, replaceable: new Set(["dead"]), load });
    expect(p.moves).toEqual([
      { shard: 0, from: "dead", to: "n4" },
      { shard: 1, from: "dead", to: "n3" },
      { shard: 3, from: undefined, to: "n4" },
    ]);
    expect(p.shards.map((s) => s.replicas)).toEqual([
      ["n4", "n1"],
      ["n2", "n3"],
      ["n1", "n2"],
      ["n3", "n4"],
    ]);
    expect(p.shards[2]).toBe(shards[2]); // untouched shards are kept as they are
    expect(Object.fromEntries(load)).toEqual({ n1: 2, n2: 2, n3: 2, n4: 2 });
    expect(p.unplaced).toBe(0);
    expect(p.deferred).toEqual([]);
  });

  it("keeps a dead replica listed when no candidate is left, and leaves shards with no live replica alone", () => {
    const shards: PlacedShard[] = [
      { shard: 0, partition: 0, replicas: ["dead", "n1"] },
      { shard: 1, partition: 0, replicas: ["dead"] },
    ];
    const p = plan({ shards, replicationFactor: 2, replaceable: new Set(["dead"]), load: new Map([["n1", 1]]) });
    expect(p.moves).toEqual([]);
    expect(p.shards.map((s) => s.replicas)).toEqual([["dead", "n1"], ["dead"]]);
    expect(p.unplaced).toBe(1);
    expect(p.withoutLiveReplica).toEqual([1]);
  });

  it("replaces a dead replica or tops a shard up only when another alive replica is serving", () => {
    // Shard 0: RF 2 after A died and C replaced it; C is still bootstrapping and B died too.
    // Shard 1: short of its RF; its one replica is bootstrapping. Shard 2: the same, serving.
    // Shard 3: B died; its other replica C serves (of shard 3, not of shard 0).
    const shards: PlacedShard[] = [
      { shard: 0, partition: 0, replicas: ["C", "B"] },
      { shard: 1, partition: 1, replicas: ["C"] },
      { shard: 2, partition: 2, replicas: ["E"] },
      { shard: 3, partition: 3, replicas: ["B", "C"] },
    ];
    const serving = new Set([replicaKey("c", 2, "E"), replicaKey("c", 3, "C"), replicaKey("other", 0, "C"), replicaKey("c", 0, "B")]);
    const load = new Map([
      ["C", 3],
      ["D", 0],
      ["E", 1],
    ]);
    const p = plan({ shards, replicationFactor: 2, replaceable: new Set(["B"]), load, serving });
    expect(p.moves).toEqual([
      { shard: 2, from: undefined, to: "D" },
      { shard: 3, from: "B", to: "D" },
    ]);
    expect(p.deferred).toEqual([
      { shard: 0, sources: ["C"], replicas: 1 },
      { shard: 1, sources: ["C"], replicas: 1 },
    ]);
    expect(p.shards[0]).toBe(shards[0]);
    expect(p.shards[1]).toBe(shards[1]);
    expect(p.withoutLiveReplica).toEqual([]);
    expect(p.unplaced).toBe(0);
  });

  it("never picks an existing replica, never removes a live one, and is deterministic (property)", () => {
    const nodeId: fc.Arbitrary<string> = fc.constantFrom("a", "b", "c", "d", "e", "f");
    fc.assert(
      fc.property(
        fc.array(fc.uniqueArray(nodeId, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 8 }),
        fc.uniqueArray(nodeId, { maxLength: 6 }),
        fc.integer({ min: 1, max: 4 }),
        fc.func(fc.nat(5)),
        fc.func(fc.boolean()),
        (lists, aliveIds, rf, loadOf, servesOf) => {
          const alive = new Set(aliveIds);
          const shards = lists.map((replicas, shard) => ({ shard, partition: 0, replicas }));
          const replaceable = new Set(["a", "b", "c", "d", "e", "f"].filter((n) => !alive.has(n)));
          const serving = new Set(shards.flatMap((s) => s.replicas.filter((r) => servesOf(`${s.shard}/${r}`)).map((r) => replicaKey("c", s.shard, r))));
          const mkLoad = (): Map<string, number> => new Map(aliveIds.map((id) => [id, loadOf(id)]));
          const p = plan({ shards, replicationFactor: rf, replaceable, load: mkLoad(), serving });
          expect(plan({ shards, replicationFactor: rf, replaceable, load: mkLoad(), serving })).toEqual(p);
          p.shards.forEach((s, i) => {
            const before = shards[i]!.replicas;
            expect(new Set(s.replicas).size).toBe(s.replicas.length);
            // Every live replica stays.
            for (const r of before) if (alive.has(r)) expect(s.replicas).toContain(r);
            // Only alive nodes are added.
            for (const r of s.replicas) if (!before.includes(r)) expect(alive.has(r)).toBe(true);
          });
          for (const m of p.moves) {
            if (m.from !== undefined) expect(replaceable.has(m.from)).toBe(true);
            expect(shards[m.shard]!.replicas).not.toContain(m.to);
            // A shard changes only while another of its alive replicas serves.
            expect(shards[m.shard]!.replicas.some((r) => alive.has(r) && serving.has(replicaKey("c", m.shard, r)))).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("spreads many replacements evenly", () => {
    // 12 shards lose their replica on "dead"; 4 fresh nodes take 3 each.
    const shards = Array.from({ length: 12 }, (_, shard) => ({ shard, partition: 0, replicas: ["dead", "keep"] }));
    const load = new Map([
      ["keep", 12],
      ["w", 0],
      ["x", 0],
      ["y", 0],
      ["z", 0],
    ]);
    plan({ shards, replicationFactor: 2, replaceable: new Set(["dead"]), load });
    expect(Object.fromEntries(load)).toEqual({ keep: 12, w: 3, x: 3, y: 3, z: 3 });
  });
});

interface Setup {
  running: RunningMeta;
  t: TestStore;
  registry: Registry;
  leases: Map<string, string>;
  flaky: FlakyStore;
  storage: FakeStorage;
  /** Registers storage nodes (with `ttlMs`, default LEASE_MS). */
  register(...ids: string[]): Promise<void>;
  registerWithTtl(ttlMs: number, ...ids: string[]): Promise<void>;
  /** Heartbeats the given nodes. */
  beat(...ids: string[]): Promise<void>;
  catalog(): Promise<CatalogMessage>;
  moves(kind: "replace" | "top_up"): Promise<number>;
  deferrals(reason: "no_serving_replica" | "status_unavailable"): Promise<number>;
}

const LEASE_MS = 1_000;
const GRACE_MS = 500;

async function setup(): Promise<Setup> {
  const t = await testStore();
  cleanups.push(() => t.cleanup());
  const flaky = new FlakyStore(t.store);
  const registry = new Registry();
  const storage = new FakeStorage();
  const argv = ["--port", "0", "--partitions", "4", "--watch-coalesce-ms", "0", "--reconcile-interval-ms", "0"];
  argv.push("--node-lease-ttl-ms", String(LEASE_MS), "--failover-grace-ms", String(GRACE_MS), "--failover-interval-ms", "60s");
  const meta = await start(loadMetaConfig({ argv, env: {} }), {
    logger: silentLogger,
    registry,
    store: flaky,
    clock: t.clock,
    journal: new FakeJournal(4).client(),
    storageClient: storage.client,
  });
  storage.catalog = () => meta.catalog.getCatalog(signal());
  cleanups.push(() => meta.stop());
  const leases = new Map<string, string>();
  const counter = async (name: string, label: string, value: string): Promise<number> =>
    (await registry.getSingleMetric(name)?.get())?.values.find((v) => v.labels[label] === value)?.value ?? 0;
  const s: Setup = {
    running: meta,
    t,
    registry,
    leases,
    flaky,
    storage,
    register: (...ids) => s.registerWithTtl(LEASE_MS, ...ids),
    async registerWithTtl(ttlMs, ...ids) {
      for (const id of ids) {
        const { leaseId } = await meta.catalog.registerNode({ id, roles: [NodeRole.STORAGE], address: `http://${id}.test:7300` }, ttlMs, signal());
        leases.set(id, leaseId);
      }
    },
    async beat(...ids) {
      for (const id of ids) expect(await meta.catalog.heartbeat(leases.get(id)!, signal())).toBe(true);
    },
    catalog: () => meta.catalog.getCatalog(signal()),
    moves: (kind) => counter("vecraft_meta_failover_moves_total", "kind", kind),
    deferrals: (reason) => counter("vecraft_meta_failover_deferrals_total", "reason", reason),
  };
  return s;
}

/** Advances the manual clock in steps, heartbeating `alive` before each step (their leases never lapse). */
async function advance(s: Setup, ms: number, alive: string[]): Promise<void> {
  for (let left = ms; left > 0; left -= 300) {
    await s.beat(...alive);
    s.t.clock.advance(Math.min(300, left));
  }
}

/** Lets every node but `alive` expire, and the failover grace pass from when the controller saw them dead. */
async function outlive(s: Setup, alive: string[]): Promise<void> {
  await advance(s, LEASE_MS + 200, alive);
  await s.running.failover!.pass();
  await advance(s, GRACE_MS + 100, alive);
}

const replicasOf = (c: CatalogMessage, name: string): string[][] =>
  [...c.collections, ...c.pendingCollections].find((x) => x.collection?.name === name)!.shards.map((s) => [...s.replicas]);

describe("failover controller (embedded store, manual clock)", () => {
  it("moves the replicas of an expired storage node after the grace, spreading them; not within the grace", async () => {
    const s = await setup();
    await s.register("s1", "s2", "s3", "s4");
    await s.running.catalog.createCollection(spec("books", 4, 2), origin, signal());
    const before = replicasOf(await s.catalog(), "books");
    expect(before).toEqual([
      ["s1", "s2"],
      ["s3", "s4"],
      ["s1", "s2"],
      ["s3", "s4"],
    ]);
    // s1 stops heartbeating; its lease ends at +1000 ms.
    await advance(s, 1_200, ["s2", "s3", "s4"]);
    expect((await s.catalog()).nodes.find((n) => n.id === "s1")?.alive).toBe(false);
    const seen = await s.running.failover!.pass();
    expect(seen).toMatchObject({ moves: [], deadNodes: [], waitingNodes: ["s1"] });
    // Within the grace: nothing moves.
    await advance(s, GRACE_MS - 200, ["s2", "s3", "s4"]);
    expect((await s.running.failover!.pass()).moves).toEqual([]);
    expect(replicasOf(await s.catalog(), "books")).toEqual(before);
    // Grace over: the controller wakes by itself and moves s1's two replicas.
    await advance(s, 300, ["s2", "s3", "s4"]);
    const after = await eventually(async () => {
      const r = replicasOf(await s.catalog(), "books");
      return r.flat().includes("s1") ? undefined : r;
    });
    // The least loaded of s3/s4 (load 2 each; ties by id: s3 first, then s4).
    expect(after).toEqual([
      ["s3", "s2"],
      ["s3", "s4"],
      ["s4", "s2"],
      ["s3", "s4"],
    ]);
    expect(await s.moves("replace")).toBe(2);
    expect(s.running.failover!.lastPass).toMatchObject({ deadNodes: ["s1"], unplaced: 0 });
    // Nothing more to do.
    expect((await s.running.failover!.pass()).moves).toEqual([]);
  });

  it("a node that re-registers within the grace keeps its replicas", async () => {
    const s = await setup();
    await s.register("s1", "s2", "s3");
    await s.running.catalog.createCollection(spec("books", 3, 1), origin, signal());
    const before = replicasOf(await s.catalog(), "books");
    await advance(s, 1_200, ["s2", "s3"]);
    expect((await s.running.failover!.pass()).waitingNodes).toEqual(["s1"]);
    await s.register("s1");
    await advance(s, GRACE_MS * 3, ["s1", "s2", "s3"]);
    const r = await s.running.failover!.pass();
    expect(r).toMatchObject({ moves: [], deadNodes: [], waitingNodes: [] });
    expect(replicasOf(await s.catalog(), "books")).toEqual(before);
    expect(await s.moves("replace")).toBe(0);
  });

  it("keeps a dead node listed when no candidate exists, and fills its shards when a storage node registers", async () => {
    const s = await setup();
    await s.register("s1", "s2");
    await s.running.catalog.createCollection(spec("pairs", 2, 2), origin, signal());
    await outlive(s, ["s2"]);
    const r = await s.running.failover!.pass();
    expect(r).toMatchObject({ moves: [], deadNodes: ["s1"], unplaced: 2 });
    expect(replicasOf(await s.catalog(), "pairs").flat().filter((n) => n === "s1")).toHaveLength(2);
    // A new storage node: the feed sees it and the controller fills both shards.
    await s.register("s3");
    const after = await eventually(async () => {
      const rs = replicasOf(await s.catalog(), "pairs");
      return rs.flat().includes("s1") ? undefined : rs;
    });
    expect(after.map((x) => [...x].sort())).toEqual([
      ["s2", "s3"],
      ["s2", "s3"],
    ]);
    expect(await s.moves("replace")).toBe(2);
  });

  it("tops up a shard shorter than its replication factor when a node joins; never touches a shard with no live replica", async () => {
    const s = await setup();
    await s.register("s1", "s2");
    await s.running.catalog.createCollection(spec("short", 1, 1), origin, signal());
    await s.running.catalog.createCollection(spec("lonely", 1, 1), origin, signal());
    const shortOn = replicasOf(await s.catalog(), "short")[0]![0]!;
    const lonelyOn = replicasOf(await s.catalog(), "lonely")[0]![0]!;
    expect([shortOn, lonelyOn]).toEqual(["s1", "s2"]);
    // The node hosting "lonely" dies: its only replica has no peer to be copied from.
    await outlive(s, [shortOn]);
    expect(await s.running.failover!.pass()).toMatchObject({ moves: [], deadNodes: [lonelyOn], withoutLiveReplica: ["lonely/0"] });
    // "short" asks for 2 replicas but lists 1 (as after an operator edit of the catalog);
    // the only alive node already hosts it.
    const keys = catalogKeys();
    const kv = (await s.t.store.get(keys.collection("short")))!;
    const rec = decodeCollection(kv.key, kv.value);
    const wider = { ...rec, spec: create(CollectionSchema, { ...rec.spec, replicationFactor: 2 }) };
    await s.t.store.txn({
      compares: [{ key: kv.key, modRevision: kv.modRevision }],
      puts: [
        { key: kv.key, value: encodeCollection(wider) },
        { key: keys.version, value: new Uint8Array() },
      ],
    });
    expect(await s.running.failover!.pass()).toMatchObject({ moves: [], unplaced: 1, withoutLiveReplica: ["lonely/0"] });
    expect(replicasOf(await s.catalog(), "lonely")).toEqual([[lonelyOn]]);
    // A node joins: "short" is topped up; "lonely" still has no live replica to copy from.
    await s.register("s3");
    await eventually(async () => ((replicasOf(await s.catalog(), "short")[0]?.length ?? 0) === 2 ? true : undefined));
    expect(replicasOf(await s.catalog(), "short")).toEqual([[shortOn, "s3"]]);
    expect(replicasOf(await s.catalog(), "lonely")).toEqual([[lonelyOn]]);
    expect(await s.moves("top_up")).toBe(1);
  });

  it("RF 2: A dies and C replaces it copying from B; B dies before C serves: B is not replaced until C serves", async () => {
    const s = await setup();
    await s.register("A", "B");
    await s.running.catalog.createCollection(spec("pairs", 1, 2), origin, signal());
    expect(replicasOf(await s.catalog(), "pairs")).toEqual([["A", "B"]]);
    // Nothing needs work: no storage node is asked anything.
    expect(await s.running.failover!.pass()).toMatchObject({ moves: [], deferred: [] });
    expect(s.storage.calls.size).toBe(0);
    // C joins; its copy of pairs/0 will stay bootstrapping.
    s.storage.set("C", "pairs", 0, ReplicaState.BOOTSTRAPPING);
    await s.register("C");
    // A dies. B serves, so C replaces A.
    await outlive(s, ["B", "C"]);
    await eventually(async () => {
      const r = replicasOf(await s.catalog(), "pairs");
      return r[0]!.includes("A") ? undefined : r;
    });
    expect(replicasOf(await s.catalog(), "pairs")).toEqual([["C", "B"]]);
    // B dies before C serves, and D joins: replacing B now would list two empty replicas
    // (and B, coming back unlisted, would delete the only copy). B stays listed.
    await s.register("D");
    await outlive(s, ["C", "D"]);
    for (let i = 0; i < 3; i++) {
      const r = await s.running.failover!.pass();
      expect(r).toMatchObject({ moves: [], deadNodes: ["A", "B"], withoutLiveReplica: [], deferred: [{ shard: "pairs/0", reason: "no_serving_replica" }] });
    }
    expect(replicasOf(await s.catalog(), "pairs")).toEqual([["C", "B"]]);
    expect(await s.deferrals("no_serving_replica")).toBe(1); // once per episode, not per pass
    // C's node stops answering: still deferred, for another reason.
    s.storage.down.add("C");
    expect((await s.running.failover!.pass()).deferred).toEqual([{ shard: "pairs/0", reason: "status_unavailable" }]);
    expect(await s.deferrals("status_unavailable")).toBe(1);
    expect(replicasOf(await s.catalog(), "pairs")).toEqual([["C", "B"]]);
    // C answers and serves: B is replaced by D, which copies from C.
    s.storage.down.delete("C");
    s.storage.set("C", "pairs", 0, ReplicaState.SERVING);
    expect((await s.running.failover!.pass()).deferred).toEqual([]);
    await eventually(async () => (replicasOf(await s.catalog(), "pairs")[0]?.includes("B") === false ? true : undefined));
    expect(replicasOf(await s.catalog(), "pairs")).toEqual([["C", "D"]]);
    expect(await s.moves("replace")).toBe(2);
  });

  it("counts a SERVING replica as a source only when it is of the collection's incarnation (uid)", async () => {
    const s = await setup();
    await s.register("A", "B");
    await s.running.catalog.createCollection(spec("again", 1, 2), origin, signal());
    expect(replicasOf(await s.catalog(), "again")).toEqual([["A", "B"]]);
    // B serves a copy of an earlier "again" (dropped and recreated; B not yet past the DROP):
    // it holds none of this incarnation's data, so no new replica may copy from it.
    s.storage.setUid("B", "again", 0, "an-earlier-incarnation");
    await s.register("C");
    await outlive(s, ["B", "C"]);
    for (let i = 0; i < 2; i++) {
      expect(await s.running.failover!.pass()).toMatchObject({ moves: [], deadNodes: ["A"], deferred: [{ shard: "again/0", reason: "no_serving_replica" }] });
    }
    expect(replicasOf(await s.catalog(), "again")).toEqual([["A", "B"]]);
    // A status without a uid (a node older than uids in status) is matched by name and shard.
    s.storage.setUid("B", "again", 0, "");
    await s.running.failover!.pass();
    await eventually(async () => (replicasOf(await s.catalog(), "again")[0]?.includes("A") === false ? true : undefined));
    expect(replicasOf(await s.catalog(), "again")).toEqual([["C", "B"]]);
  });

  it("tops a shard up only from a serving replica", async () => {
    const s = await setup();
    await s.register("s1", "s2");
    await s.running.catalog.createCollection(spec("short", 1, 1), origin, signal());
    const on = replicasOf(await s.catalog(), "short")[0]![0]!;
    s.storage.set(on, "short", 0, ReplicaState.CATCHING_UP);
    // The collection asks for 2 replicas but lists 1 (as after an operator edit of the catalog).
    const keys = catalogKeys();
    const kv = (await s.t.store.get(keys.collection("short")))!;
    const rec = decodeCollection(kv.key, kv.value);
    await s.t.store.txn({
      compares: [{ key: kv.key, modRevision: kv.modRevision }],
      puts: [
        { key: kv.key, value: encodeCollection({ ...rec, spec: create(CollectionSchema, { ...rec.spec, replicationFactor: 2 }) }) },
        { key: keys.version, value: new Uint8Array() },
      ],
    });
    expect(await s.running.failover!.pass()).toMatchObject({ moves: [], deferred: [{ shard: "short/0", reason: "no_serving_replica" }] });
    s.storage.set(on, "short", 0, ReplicaState.SERVING);
    // This pass, or one the catalog edit triggered and that is still to run, tops it up.
    await s.running.failover!.pass();
    await eventually(async () => (replicasOf(await s.catalog(), "short")[0]?.length === 2 ? true : undefined));
    expect(await s.moves("top_up")).toBe(1);
  });

  it("after a store outage, a node registered with a longer lease TTL has its own TTL to come back", async () => {
    const s = await setup();
    await s.registerWithTtl(LEASE_MS * 4, "s1");
    await s.register("s2", "s3");
    await s.running.catalog.createCollection(spec("books", 3, 2), origin, signal());
    const before = replicasOf(await s.catalog(), "books");
    s.flaky.down = true;
    await expect(s.running.failover!.pass()).rejects.toMatchObject({ code: Code.Unavailable });
    // Every lease expires during the outage, s1's longer one too.
    s.t.clock.advance(LEASE_MS * 4 + 500);
    s.flaky.down = false;
    expect((await s.catalog()).nodes.every((n) => !n.alive)).toBe(true);
    await s.register("s2", "s3");
    // Past the default TTL and the grace after the store came back: s1 still waits (its TTL is 4x).
    await advance(s, LEASE_MS + GRACE_MS + 300, ["s2", "s3"]);
    expect(await s.running.failover!.pass()).toMatchObject({ moves: [], deadNodes: [], waitingNodes: ["s1"] });
    expect(replicasOf(await s.catalog(), "books")).toEqual(before);
    // Past its own TTL: it counts as dead and its replicas move.
    await advance(s, LEASE_MS * 3, ["s2", "s3"]);
    await eventually(async () => ((await s.moves("replace")) === 2 ? true : undefined));
    expect(replicasOf(await s.catalog(), "books").flat()).not.toContain("s1");
  });

  it("store unreachable: topology changes fail UNAVAILABLE with a clear message, the cached catalog is served, and expiries during the outage move nothing for a lease TTL", async () => {
    const s = await setup();
    await s.register("s1", "s2", "s3");
    await s.running.catalog.createCollection(spec("books", 3, 2), origin, signal());
    await advance(s, 1_200, ["s1", "s2", "s3"]);
    const before = await s.catalog();
    expect(replicasOf(before, "books")).toEqual([
      ["s1", "s2"],
      ["s3", "s1"],
      ["s2", "s3"],
    ]);
    await eventually(() => (s.running.catalog.latest?.revision === before.revision ? true : undefined));
    s.flaky.down = true;
    const message = /the metadata store \(the embedded store\) is unreachable.*data reads and writes on the existing topology keep working/;
    await expect(s.running.catalog.createCollection(spec("other", 1, 1), origin, signal())).rejects.toMatchObject({ code: Code.Unavailable, message });
    await expect(s.running.catalog.dropCollection("books", origin, signal())).rejects.toMatchObject({ code: Code.Unavailable, message });
    await expect(s.running.catalog.heartbeat(s.leases.get("s1")!, signal())).rejects.toMatchObject({ code: Code.Unavailable, message });
    await expect(
      s.running.catalog.registerNode({ id: "s9", roles: [NodeRole.STORAGE], address: "http://s9.test:7300" }, LEASE_MS, signal()),
    ).rejects.toMatchObject({ code: Code.Unavailable, message });
    // GetCatalog and a new WatchCatalog stream get the last catalog read.
    expect(await s.catalog()).toEqual(before);
    const watch = s.running.catalog.watch(0n, signal());
    expect((await watch.next()).value).toEqual(before);
    await watch.return(undefined);
    await expect(s.running.failover!.pass()).rejects.toMatchObject({ code: Code.Unavailable });
    const ready = await fetch(`${s.running.url}/readyz`);
    expect(ready.status).toBe(200);
    // Heartbeats fail for longer than the lease: every lease expires (the embedded store's
    // clock keeps running; with etcd this is a meta-manager cut off from a live etcd).
    s.t.clock.advance(LEASE_MS + 500);
    s.flaky.down = false;
    expect((await s.catalog()).nodes.every((n) => !n.alive)).toBe(true);
    // s2 and s3 re-register at once; s1 only later, past the failover grace but within a
    // lease TTL of the store coming back: s1 could be replaced by now, yet nothing moves.
    await s.register("s2", "s3");
    await advance(s, GRACE_MS + 100, ["s2", "s3"]);
    expect(await s.running.failover!.pass()).toMatchObject({ moves: [], deadNodes: [], waitingNodes: ["s1"] });
    await s.register("s1");
    await advance(s, LEASE_MS * 2, ["s1", "s2", "s3"]);
    expect(await s.running.failover!.pass()).toMatchObject({ moves: [], deadNodes: [], waitingNodes: [] });
    expect(await s.moves("replace")).toBe(0);
    expect(replicasOf(await s.catalog(), "books")).toEqual(replicasOf(before, "books"));
    // Everything works again.
    await s.running.catalog.createCollection(spec("other", 1, 1), origin, signal());
  });
});
