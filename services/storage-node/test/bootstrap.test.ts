// Cluster hosting (host-all=false): CREATE entries place shards by their `replicas`; the
// catalog's placements are followed by bootstrapping from a peer's snapshot (served over
// a real HTTP/2 server) or by rebuilding from the journal, then catching up; replicas
// placed elsewhere are removed; a replica being built answers UNAVAILABLE; a cancelled
// or broken transfer leaves nothing behind.
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { crc32c } from "@node-rs/crc32";
import { createLogger, silentLogger } from "@vecraft/common";
import { CatalogSchema, CollectionState, Metric, NodeRole, ReplicaState, StorageService, type Catalog, type JournalService } from "@vecraft/rpc";
import { loadStorageConfig, start, type RunningStorage } from "../src/index.js";
import type { CatalogView } from "../src/placement.js";
import type { StorageNode } from "../src/node.js";
import { FakeJournal } from "./fake-journal.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "vecraft-storage-boot-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A catalog fed by hand (the CatalogFollower's part the placement follower uses). */
class HandCatalog implements CatalogView {
  current: Catalog | undefined;
  readonly addresses = new Map<string, string>();
  private readonly listeners = new Set<() => void>();
  private revision = 0n;

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  nodeAddress(id: string): string | undefined {
    return this.addresses.get(id);
  }

  set(collections: { name: string; uid: string; replicas: string[] }[], alive: string[]): void {
    this.current = create(CatalogSchema, {
      revision: ++this.revision,
      partitions: 1,
      collections: collections.map((c) => ({
        collection: { name: c.name, dimension: DIM, shards: 1, metric: Metric.COSINE },
        uid: c.uid,
        state: CollectionState.READY,
        shards: [{ shard: 0, partition: 0, replicas: c.replicas }],
      })),
      nodes: [...this.addresses].map(([id, address]) => ({ id, address, alive: alive.includes(id), roles: [NodeRole.STORAGE] })),
    });
    for (const fn of [...this.listeners]) fn();
  }
}

const DIM = 8;

function rand(n: number, seed: number): number[][] {
  let s = seed;
  const next = (): number => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff - 0.5;
  };
  return Array.from({ length: n }, () => Array.from({ length: DIM }, next));
}

function writeRecords(journal: FakeJournal, collection: string, from: number, n: number, seed: number): void {
  const vectors = rand(n, seed);
  for (let i = 0; i < n; i += 20) {
    journal.write(
      0,
      collection,
      0,
      vectors.slice(i, i + 20).map((v, k) => ({ id: `r${from + i + k}`, vector: v, metadata: { n: from + i + k } })),
    );
  }
}

interface NodeOptions {
  readonly dir?: string;
  readonly journal?: Client<typeof JournalService>;
  readonly peerClient?: (address: string) => Client<typeof StorageService>;
  readonly snapshotIdleMs?: number;
}

async function startNode(id: string, journal: FakeJournal, catalog: HandCatalog, o: NodeOptions = {}): Promise<RunningStorage & { dir: string }> {
  const dir = o.dir ?? (await tempDir());
  const argv = ["--data-dir", dir, "--port", "0", "--partitions", "0", "--shutdown-grace-ms", "100", "--node-id", id, "--host-all=false"];
  const config = loadStorageConfig({ argv: [...argv, "--checkpoint-every-writes", "3", "--subscribe-batch-entries", "4"], env: {} });
  const running = await start(config, {
    // VECRAFT_TEST_LOGS=1 shows what the nodes do.
    logger: process.env["VECRAFT_TEST_LOGS"] ? createLogger({ name: id, level: "debug" }) : silentLogger,
    journal: o.journal ?? journal.client(),
    catalog,
    snapshotChunkBytes: 8192,
    placementSettleMs: 0,
    ...(o.peerClient ? { peerClient: o.peerClient } : {}),
    ...(o.snapshotIdleMs !== undefined ? { snapshotIdleMs: o.snapshotIdleMs } : {}),
  });
  let stopped = false;
  cleanups.push(async () => {
    if (!stopped) await running.stop();
  });
  catalog.addresses.set(id, running.url);
  return {
    ...running,
    dir,
    stop: async () => {
      stopped = true;
      await running.stop();
    },
  };
}

async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Like until, for a condition that needs to await (files on disk). */
async function eventually(what: string, cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function caughtUp(node: StorageNode, journal: FakeJournal, offset = journal.logs.get(0)!.length): Promise<void> {
  await node.waitFor(0, { minOffset: offset, minTs: 0n }, 10_000, new AbortController().signal);
}

/** Same records (ids, vectors, metadata, offsets) and the same search answers. */
function expectSameReplica(a: StorageNode, b: StorageNode, ids: string[]): void {
  const sa = a.shard("c", 0);
  const sb = b.shard("c", 0);
  expect(sb.store.appliedOffset).toBe(sa.store.appliedOffset);
  const rows = (s: typeof sa): unknown[] => s.get(ids).map((r) => [r.id, Array.from(r.vector), r.metadataJson, r.offset, r.ts]).sort();
  expect(rows(sb)).toEqual(rows(sa));
  expect(sb.store.liveRecords).toBe(sa.store.liveRecords);
  expect(sb.index.size).toBe(sa.index.size);
  for (const q of rand(5, 99)) {
    const v = Float32Array.from(q);
    const hits = (s: typeof sa): unknown[] => s.search(v, { k: 10, ef: 1000 }).map((h) => [h.id, h.score]);
    expect(hits(sb)).toEqual(hits(sa));
  }
}

/**
 * A peer that relays a real node's snapshot: the header and one chunk, then it stalls
 * (until cancelled) or breaks. Its catalog address is relay://s1.
 */
function relayOf(url: string, mode: "stall" | "break"): { mode: "stall" | "break"; peerClient: (address: string) => Client<typeof StorageService> } {
  const real = createClient(StorageService, createGrpcTransport({ baseUrl: url }));
  const state = { mode, peerClient: (address: string): Client<typeof StorageService> => (address === "relay://s1" ? relay : createClient(StorageService, createGrpcTransport({ baseUrl: address }))) };
  const relay = createClient(
    StorageService,
    createRouterTransport(({ service }) => {
      service(StorageService, {
        async *getShardSnapshot(req, ctx) {
          let sent = 0;
          try {
            for await (const msg of real.getShardSnapshot(req, { signal: ctx.signal })) {
              yield msg;
              if (++sent < 2) continue;
              if (state.mode === "break") throw new ConnectError("peer went away", Code.Unavailable);
              await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
              return;
            }
          } catch (e) {
            // A stalled relay ends when the bootstrap gives up on it: nothing to report.
            if (state.mode === "break") throw e;
          }
        },
      });
    }),
  );
  return state;
}

const allIds = (n: number): string[] => Array.from({ length: n }, (_, i) => `r${i}`);

async function dirsOf(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir(join(dir, "storage"))) {
    if (name.startsWith("node.sqlite")) continue;
    out.push(name);
    // A directory being removed meanwhile (a retired replica) may be gone already.
    if (!name.startsWith(".")) for (const sub of await readdir(join(dir, "storage", name)).catch(() => [])) out.push(`${name}/${sub}`);
  }
  return out;
}

describe("CRC32C", () => {
  // Snapshot files are checked chunk by chunk: the running value must extend piecewise.
  it("matches the standard check value, also when extended piecewise", () => {
    const data = new TextEncoder().encode("123456789");
    expect(crc32c(data)).toBe(0xe3069283);
    expect(crc32c(data.subarray(5), crc32c(data.subarray(0, 5)))).toBe(0xe3069283);
  });
});

describe("storage node cluster hosting", () => {
  it("installs a peer's snapshot, catches up from a source that is behind, and keeps it over a restart", async () => {
    const journal = new FakeJournal(1);
    journal.createCollection(0, { name: "c", dimension: DIM }, [0], { uid: "u1", replicas: { 0: ["s1"] } });
    writeRecords(journal, "c", 0, 200, 1);
    const catalog = new HandCatalog();
    let cap = Number.POSITIVE_INFINITY;
    const s1 = await startNode("s1", journal, catalog, { journal: journal.client(() => cap) });
    await caughtUp(s1.node, journal);
    // s1 stops seeing the journal here: its snapshot will be behind s2's position.
    cap = journal.logs.get(0)!.length;
    writeRecords(journal, "c", 200, 100, 2);
    journal.write(0, "c", 0, [{ id: "r3", vector: rand(1, 3)[0]!, metadata: { changed: true } }], ["r4", "r250"]);
    const s2 = await startNode("s2", journal, catalog);
    await caughtUp(s2.node, journal);
    expect(s2.node.hasReplica("c", 0)).toBe(false); // the CREATE placed it on s1 only
    catalog.set([{ name: "c", uid: "u1", replicas: ["s1", "s2"] }], ["s1", "s2"]);
    await until("s2 to serve c/0", () => s2.node.hostedShards().length === 1);
    expect(s2.node.shard("c", 0).uid).toBe("u1");
    expect(s2.node.shard("c", 0).store.appliedOffset).toBe(journal.logs.get(0)!.length);
    cap = Number.POSITIVE_INFINITY;
    journal.poke();
    await caughtUp(s1.node, journal);
    expectSameReplica(s1.node, s2.node, allIds(300));
    // Both keep applying the journal alike.
    writeRecords(journal, "c", 300, 40, 4);
    await caughtUp(s1.node, journal);
    await caughtUp(s2.node, journal);
    expectSameReplica(s1.node, s2.node, allIds(340));
    const metrics = await (await fetch(`${s2.url}/metrics`)).text();
    expect(metrics).toMatch(/vecraft_storage_bootstraps_total\{source="snapshot",outcome="completed"\} 1/);
    expect(metrics).toMatch(/vecraft_storage_catchup_entries_total [1-9]/);
    expect(metrics).toMatch(/vecraft_storage_bootstrap_bytes_received_total [1-9]/);
    expect(metrics).toMatch(/vecraft_storage_replicas\{state="serving"\} 1/);

    // A restart keeps its own replica: reopened from the data dir, neither re-bootstrapped nor removed.
    const before = await dirsOf(s2.dir);
    await s2.stop();
    writeRecords(journal, "c", 340, 20, 5);
    const again = await startNode("s2", journal, catalog, { dir: s2.dir });
    expect(again.node.hostedShards().map((s) => s.key)).toEqual(["c/0"]);
    catalog.set([{ name: "c", uid: "u1", replicas: ["s1", "s2"] }], ["s1", "s2"]);
    await caughtUp(again.node, journal);
    await caughtUp(s1.node, journal);
    expect(await dirsOf(again.dir)).toEqual(before);
    expect(await (await fetch(`${again.url}/metrics`)).text()).not.toMatch(/vecraft_storage_bootstraps_total\{/);
    expectSameReplica(s1.node, again.node, allIds(360));
  });

  it("installs a snapshot ahead of its own follower at once; the follower skips what it holds", async () => {
    const journal = new FakeJournal(1);
    journal.createCollection(0, { name: "c", dimension: DIM }, [0], { uid: "u1", replicas: { 0: ["s1"] } });
    writeRecords(journal, "c", 0, 160, 6);
    const catalog = new HandCatalog();
    const s1 = await startNode("s1", journal, catalog);
    await caughtUp(s1.node, journal);
    let cap = 1;
    const s2 = await startNode("s2", journal, catalog, { journal: journal.client(() => cap) });
    await caughtUp(s2.node, journal, 1);
    catalog.set([{ name: "c", uid: "u1", replicas: ["s1", "s2"] }], ["s1", "s2"]);
    await until("s2 to serve c/0", () => s2.node.hostedShards().length === 1);
    expect(s2.node.position(0).offset).toBe(1);
    expect(s2.node.shard("c", 0).store.liveRecords).toBe(160);
    cap = Number.POSITIVE_INFINITY;
    journal.poke();
    journal.write(0, "c", 0, [{ id: "r1", vector: rand(1, 7)[0]! }], ["r2"]);
    await caughtUp(s1.node, journal);
    await caughtUp(s2.node, journal);
    expectSameReplica(s1.node, s2.node, allIds(160));
  });

  it("rebuilds from the journal when no peer is alive, taking only the placed incarnation's entries", async () => {
    const journal = new FakeJournal(1);
    journal.createCollection(0, { name: "c", dimension: DIM }, [0], { uid: "old", replicas: { 0: ["s1"] } });
    writeRecords(journal, "c", 0, 40, 8);
    journal.dropCollection(0, "c", "old");
    journal.createCollection(0, { name: "c", dimension: DIM }, [0], { uid: "u1", replicas: { 0: ["s1"] } });
    writeRecords(journal, "c", 0, 60, 9);
    const catalog = new HandCatalog();
    // A reference replica on a node that hosts everything (standalone style).
    const refDir = await tempDir();
    const refConfig = loadStorageConfig({ argv: ["--data-dir", refDir, "--port", "0", "--partitions", "0", "--shutdown-grace-ms", "100"], env: {} });
    const ref = await start(refConfig, { logger: silentLogger, journal: journal.client() });
    cleanups.push(() => ref.stop());
    await caughtUp(ref.node, journal);
    const s2 = await startNode("s2", journal, catalog);
    catalog.addresses.set("s1", "http://127.0.0.1:1"); // registered, lease expired
    catalog.set([{ name: "c", uid: "u1", replicas: ["s1", "s2"] }], ["s2"]);
    await until("s2 to serve c/0", () => s2.node.hostedShards().length === 1);
    await caughtUp(s2.node, journal);
    expect(s2.node.shard("c", 0).store.liveRecords).toBe(60);
    expectSameReplica(ref.node, s2.node, allIds(60));
    const metrics = await (await fetch(`${s2.url}/metrics`)).text();
    expect(metrics).toMatch(/vecraft_storage_bootstraps_total\{source="journal",outcome="completed"\} 1/);
  });

  it("removes a replica the catalog placed elsewhere, and leaves collections the catalog does not list", async () => {
    const journal = new FakeJournal(1);
    journal.createCollection(0, { name: "c", dimension: DIM }, [0], { uid: "u1", replicas: { 0: ["s1", "s2"] } });
    journal.createCollection(0, { name: "d", dimension: DIM }, [0], { uid: "u2", replicas: { 0: ["s2"] } });
    journal.createCollection(0, { name: "e", dimension: DIM }, [0], { uid: "u3", replicas: { 0: ["s1"] } });
    writeRecords(journal, "c", 0, 20, 10);
    const catalog = new HandCatalog();
    const s2 = await startNode("s2", journal, catalog);
    await caughtUp(s2.node, journal);
    expect(s2.node.hostedShards().map((s) => s.key).sort()).toEqual(["c/0", "d/0"]);
    // A catalog with c placed on s1 only; d is not in it (its DROP will come through the journal).
    catalog.set([{ name: "c", uid: "u1", replicas: ["s1"] }], ["s1", "s2"]);
    await until("c/0 to be removed", () => !s2.node.hasReplica("c", 0));
    expect(s2.node.hostedShards().map((s) => s.key)).toEqual(["d/0"]);
    // Closed and deleted once nothing uses it (moments later).
    await eventually("c/0's files to go", async () => (await dirsOf(s2.dir)).every((d) => !d.startsWith("c.")));
    // A same-named collection of another incarnation is not this replica: left alone.
    catalog.set([{ name: "d", uid: "other", replicas: ["s1"] }], ["s1", "s2"]);
    await new Promise((r) => setTimeout(r, 50));
    expect(s2.node.hasReplica("d", 0)).toBe(true);
  });

  it("answers UNAVAILABLE while bootstrapping; a cancelled or broken transfer leaves nothing behind", async () => {
    const journal = new FakeJournal(1);
    journal.createCollection(0, { name: "c", dimension: DIM }, [0], { uid: "u1", replicas: { 0: ["s1"] } });
    writeRecords(journal, "c", 0, 300, 11);
    const catalog = new HandCatalog();
    // s1 follows a catalog of its own: the one below places c on "relay" (s1 behind a relay).
    const s1 = await startNode("s1", journal, new HandCatalog());
    await caughtUp(s1.node, journal);
    const relay = relayOf(s1.url, "stall");
    const s2 = await startNode("s2", journal, catalog, { peerClient: relay.peerClient });
    await caughtUp(s2.node, journal);
    catalog.addresses.set("relay", "relay://s1");
    const client = createClient(StorageService, createGrpcTransport({ baseUrl: s2.url }));
    catalog.set([{ name: "c", uid: "u1", replicas: ["relay", "s2"] }], ["relay", "s2"]);
    await until("a snapshot transfer to be under way", () => s2.node.replicas().some((r) => r.bytesDone > 0));
    const status = await client.getStorageStatus({});
    expect(status.shards).toHaveLength(1);
    expect(status.shards[0]).toMatchObject({ collection: "c", shard: 0, state: ReplicaState.BOOTSTRAPPING });
    expect(status.shards[0]!.bootstrapBytesDone).toBeGreaterThan(0n);
    expect(status.shards[0]!.bootstrapBytesTotal).toBeGreaterThan(status.shards[0]!.bootstrapBytesDone);
    const err = await client.searchShard({ collection: "c", shard: 0, vectorF32: new Uint8Array(DIM * 4), k: 1 }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.Unavailable);
    expect(err?.rawMessage).toMatch(/not serving yet: copying a snapshot from a peer/);
    expect((await dirsOf(s2.dir)).some((d) => d.startsWith(".bootstrap-"))).toBe(true);

    // Placement moves away mid-transfer: cancelled, and nothing of it stays on disk.
    catalog.set([{ name: "c", uid: "u1", replicas: ["relay"] }], ["relay", "s2"]);
    await until("the bootstrap to be cancelled", () => s2.node.replicas().length === 0);
    expect(await dirsOf(s2.dir)).toEqual([]);

    // A transfer that breaks mid-stream: the partial copy goes, and the bootstrap is
    // retried later (a passing failure is no reason for a full journal rebuild)...
    relay.mode = "break";
    catalog.set([{ name: "c", uid: "u1", replicas: ["relay", "s2"] }], ["relay", "s2"]);
    await eventually("a failed attempt", async () => /outcome="failed"\} [1-9]/.test(await (await fetch(`${s2.url}/metrics`)).text()));
    expect(s2.node.hostedShards()).toEqual([]);
    // ...until no live peer has the shard: then it is rebuilt from the journal.
    catalog.set([{ name: "c", uid: "u1", replicas: ["relay", "s2"] }], ["s2"]);
    await until("s2 to serve c/0", () => s2.node.hostedShards().length === 1);
    await caughtUp(s2.node, journal);
    expectSameReplica(s1.node, s2.node, allIds(300));
    const dirs = await dirsOf(s2.dir);
    expect(dirs.filter((d) => d.startsWith("."))).toEqual([]);
    expect(dirs.filter((d) => d.includes("/shard-"))).toHaveLength(1);
    expect(existsSync(join(s2.dir, "storage", "node.sqlite"))).toBe(true);
    const metrics = await (await fetch(`${s2.url}/metrics`)).text();
    expect(metrics).toMatch(/vecraft_storage_bootstraps_total\{source="snapshot",outcome="failed"\} [1-9]/);
    expect(metrics).toMatch(/vecraft_storage_snapshot_peer_failures_total [1-9]/);
    expect(metrics).toMatch(/vecraft_storage_bootstraps_total\{source="journal",outcome="completed"\} 1/);
  });

  it("a shutdown mid-transfer stops at once and leaves nothing; a restart sweeps what a crash left", async () => {
    const journal = new FakeJournal(1);
    journal.createCollection(0, { name: "c", dimension: DIM }, [0], { uid: "u1", replicas: { 0: ["s1"] } });
    writeRecords(journal, "c", 0, 200, 13);
    const s1 = await startNode("s1", journal, new HandCatalog());
    await caughtUp(s1.node, journal);
    const relay = relayOf(s1.url, "stall");
    const catalog = new HandCatalog();
    const s2 = await startNode("s2", journal, catalog, { peerClient: relay.peerClient });
    catalog.addresses.set("relay", "relay://s1");
    catalog.set([{ name: "c", uid: "u1", replicas: ["relay", "s2"] }], ["relay", "s2"]);
    await until("a snapshot transfer to be under way", () => s2.node.replicas().some((r) => r.bytesDone > 0));
    await s2.stop();
    expect(await dirsOf(s2.dir)).toEqual([]);
    // What a crash mid-bootstrap leaves: a scratch dir and an unregistered bootstrapped replica dir.
    await mkdir(join(s2.dir, "storage", ".bootstrap-deadbeef"), { recursive: true });
    await mkdir(join(s2.dir, "storage", "c.1", "shard-0.b0123abcd"), { recursive: true });
    const again = await startNode("s2", journal, new HandCatalog(), { dir: s2.dir });
    expect(again.node.hostedShards()).toEqual([]);
    expect(await dirsOf(s2.dir)).toEqual([]);
  });

  it("serves snapshots only of a serving replica of the asked incarnation", async () => {
    const journal = new FakeJournal(1);
    journal.createCollection(0, { name: "c", dimension: DIM }, [0], { uid: "u1", replicas: { 0: ["s1"] } });
    writeRecords(journal, "c", 0, 20, 12);
    const catalog = new HandCatalog();
    const s1 = await startNode("s1", journal, catalog);
    await caughtUp(s1.node, journal);
    const client = createClient(StorageService, createGrpcTransport({ baseUrl: s1.url }));
    const drain = async (req: { collection: string; shard: number; uid: string }): Promise<ConnectError | undefined> => {
      try {
        for await (const _ of client.getShardSnapshot(req)) void _;
        return undefined;
      } catch (e) {
        return ConnectError.from(e);
      }
    };
    expect((await drain({ collection: "c", shard: 0, uid: "u0" }))?.code).toBe(Code.FailedPrecondition);
    expect((await drain({ collection: "nope", shard: 0, uid: "u1" }))?.code).toBe(Code.NotFound);
    expect(await drain({ collection: "c", shard: 0, uid: "u1" })).toBeUndefined();
    // The sender's scratch copies are gone once the stream ended.
    expect((await dirsOf(s1.dir)).filter((d) => d.startsWith("."))).toEqual([]);
  });

  it("keeps the placed incarnation's bootstrap when the follower replays an older CREATE; gives up on a stalled peer", async () => {
    const journal = new FakeJournal(1);
    // An old incarnation placed on s2, dropped; the new one placed on s1 (s2 gets it from the catalog).
    journal.createCollection(0, { name: "c", dimension: DIM }, [0], { uid: "u1", replicas: { 0: ["s2"] } });
    writeRecords(journal, "c", 0, 20, 20);
    journal.dropCollection(0, "c", "u1");
    journal.createCollection(0, { name: "c", dimension: DIM }, [0], { uid: "u2", replicas: { 0: ["s1"] } });
    writeRecords(journal, "c", 0, 40, 21);
    const s1 = await startNode("s1", journal, new HandCatalog());
    await caughtUp(s1.node, journal);
    const relay = relayOf(s1.url, "stall");
    const catalog = new HandCatalog();
    let cap = 0;
    const s2 = await startNode("s2", journal, catalog, { journal: journal.client(() => cap), peerClient: relay.peerClient, snapshotIdleMs: 500 });
    catalog.addresses.set("relay", "relay://s1");
    catalog.set([{ name: "c", uid: "u2", replicas: ["relay", "s2"] }], ["relay", "s2"]);
    await until("a snapshot transfer to be under way", () => s2.node.replicas().some((r) => r.bytesDone > 0));
    // The follower reaches u1's CREATE (placing the shard here) while u2 is being copied:
    // the catalog places u2, so no u1 replica is created over it.
    cap = 1;
    journal.poke();
    await caughtUp(s2.node, journal, 1);
    expect(s2.node.hostedShards()).toEqual([]);
    expect(s2.node.replicas().map((r) => r.uid)).toEqual(["u2"]);
    // The stalled peer is given up on (no message for 500 ms); while it is alive the
    // bootstrap is retried, not rebuilt from the journal.
    await eventually("the stalled transfer to fail", async () => /vecraft_storage_snapshot_peer_failures_total [1-9]/.test(await (await fetch(`${s2.url}/metrics`)).text()));
    expect(await (await fetch(`${s2.url}/metrics`)).text()).not.toMatch(/source="journal"/);
    cap = Number.POSITIVE_INFINITY;
    journal.poke();
    catalog.set([{ name: "c", uid: "u2", replicas: ["relay", "s2"] }], ["s2"]);
    await until("s2 to serve c/0", () => s2.node.hostedShards().length === 1);
    await caughtUp(s2.node, journal);
    expect(s2.node.shard("c", 0).uid).toBe("u2");
    expectSameReplica(s1.node, s2.node, allIds(40));
    expect((await dirsOf(s2.dir)).filter((d) => d.includes("/shard-"))).toHaveLength(1);
  });

  it("answers a read that waited on a replica removed meanwhile with NOT_FOUND (moved off)", async () => {
    const journal = new FakeJournal(1);
    journal.createCollection(0, { name: "c", dimension: DIM }, [0], { uid: "u1", replicas: { 0: ["s1", "s2"] } });
    writeRecords(journal, "c", 0, 20, 22);
    const catalog = new HandCatalog();
    const s2 = await startNode("s2", journal, catalog);
    await caughtUp(s2.node, journal);
    const client = createClient(StorageService, createGrpcTransport({ baseUrl: s2.url }));
    const next = BigInt(journal.logs.get(0)!.length + 1);
    const read = client.getShardRecords({ collection: "c", shard: 0, ids: ["r1"], read: { minOffset: next, waitMs: 10_000 } }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    await new Promise((r) => setTimeout(r, 50));
    catalog.set([{ name: "c", uid: "u1", replicas: ["s1"] }], ["s1", "s2"]);
    expect(s2.node.hasReplica("c", 0)).toBe(false);
    journal.tick(0);
    const err = await read;
    expect(err?.code).toBe(Code.NotFound);
    expect(err?.rawMessage).toMatch(/replica of shard 0 of collection c moved off storage node s2; read another replica/);
    await eventually("c/0's files to go", async () => (await dirsOf(s2.dir)).length === 0);
  });

  it("removes a replica a CREATE entry placed here when the catalog already placed it elsewhere", async () => {
    const journal = new FakeJournal(1);
    journal.createCollection(0, { name: "c", dimension: DIM }, [0], { uid: "u1", replicas: { 0: ["s2"] } });
    writeRecords(journal, "c", 0, 20, 23);
    const catalog = new HandCatalog();
    catalog.addresses.set("s1", "http://127.0.0.1:1");
    catalog.set([{ name: "c", uid: "u1", replicas: ["s1"] }], ["s1"]);
    const s2 = await startNode("s2", journal, catalog);
    await caughtUp(s2.node, journal);
    expect(s2.node.hasReplica("c", 0)).toBe(false);
    await eventually("c/0's files to go", async () => (await dirsOf(s2.dir)).length === 0);
  });

  it("fails a journal rebuild that finds no CREATE of the incarnation, and forgets placements the catalog dropped", async () => {
    const journal = new FakeJournal(1);
    journal.createCollection(0, { name: "c", dimension: DIM }, [0], { replicas: { 0: ["s1"] } }); // legacy: no uid
    writeRecords(journal, "c", 0, 20, 24);
    const catalog = new HandCatalog();
    const s2 = await startNode("s2", journal, catalog);
    await caughtUp(s2.node, journal);
    await expect(s2.node.bootstrap({ collection: "c", shard: 0, partition: 0, uid: "u1", peers: [] })).rejects.toThrow(
      /partition 0 holds no CREATE entry of incarnation u1 through offset \d+/,
    );
    expect(s2.node.replicas()).toEqual([]);
    // Placed here by the catalog: the same failure, retried with backoff; the placement
    // follower forgets it once the catalog no longer has the collection.
    catalog.set([{ name: "c", uid: "u1", replicas: ["s2"] }], ["s2"]);
    await until("a failed bootstrap", () => (s2.placement?.tracked().failures ?? 0) === 1);
    catalog.set([], ["s2"]);
    expect(s2.placement?.tracked()).toMatchObject({ firstSeen: 0, failures: 0, unfollowed: 0 });
    expect(await dirsOf(s2.dir)).toEqual([]);
  });

  it("serves snapshots from hard links of the index checkpoint, at most two at once", async () => {
    const journal = new FakeJournal(1);
    journal.createCollection(0, { name: "c", dimension: DIM }, [0], { uid: "u1", replicas: { 0: ["s1"] } });
    writeRecords(journal, "c", 0, 300, 25);
    const s1 = await startNode("s1", journal, new HandCatalog());
    await caughtUp(s1.node, journal);
    const client = createClient(StorageService, createGrpcTransport({ baseUrl: s1.url }));
    const ac = new AbortController();
    // 1-byte chunks: these streams cannot finish before they are cancelled.
    const held = [0, 1].map(() => client.getShardSnapshot({ collection: "c", shard: 0, uid: "u1", chunkBytes: 1 }, { signal: ac.signal })[Symbol.asyncIterator]());
    for (const it of held) {
      const first = await it.next();
      expect(first.done ? undefined : first.value.part.case).toBe("header");
    }
    const scratch = (await readdir(join(s1.dir, "storage"))).filter((d) => d.startsWith(".snapshot-"));
    expect(scratch).toHaveLength(2);
    const linked = await stat(join(s1.dir, "storage", scratch[0]!, "index.usearch"));
    expect(linked.nlink).toBeGreaterThanOrEqual(2);
    const drain = async (): Promise<ConnectError | undefined> => {
      try {
        for await (const _ of client.getShardSnapshot({ collection: "c", shard: 0, uid: "u1" })) void _;
        return undefined;
      } catch (e) {
        return ConnectError.from(e);
      }
    };
    const busy = await drain();
    expect(busy?.code).toBe(Code.ResourceExhausted);
    expect(busy?.rawMessage).toMatch(/storage node s1 is already serving 2 snapshots; retry/);
    ac.abort();
    for (const it of held) await it.return?.().catch(() => undefined);
    await eventually("a snapshot to be served again", async () => (await drain()) === undefined);
    await eventually("the scratch copies to go", async () => (await dirsOf(s1.dir)).filter((d) => d.startsWith(".")).length === 0);
  });
});
