// The storage node against an in-memory journal: DDL in journal order, exactly-once
// replay, search/get/query, read targets, restart from checkpoint or SQLite.
import { mkdtemp, rm, writeFile, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { DeadlineExceededError, NotFoundError, silentLogger } from "@vecraft/common";
import { StorageNode } from "../src/node.js";
import { exactScore } from "../src/shard.js";
import { FakeJournal } from "./fake-journal.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "vecraft-storage-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function openNode(dataDir: string, journal: FakeJournal, overrides: Partial<Parameters<typeof StorageNode.open>[0]> = {}): Promise<StorageNode> {
  const node = await StorageNode.open({
    dataDir,
    nodeId: "s1",
    partitions: [...journal.logs.keys()],
    journal: journal.client(),
    logger: silentLogger,
    hostAll: true,
    exactThreshold: 50,
    checkpointEveryWrites: 1_000_000,
    subscribeBatchEntries: 7,
    ...overrides,
  });
  let closed = false;
  cleanups.push(async () => {
    if (!closed) await node.close();
  });
  const close = node.close.bind(node);
  node.close = async () => {
    closed = true;
    await close();
  };
  return node;
}

async function caughtUp(node: StorageNode, journal: FakeJournal, partition = 0): Promise<void> {
  const target = journal.logs.get(partition)!.length;
  await node.waitFor(partition, { minOffset: target, minTs: 0n }, 5000, new AbortController().signal);
}

function rand(n: number, dim: number, seed = 1): number[][] {
  let s = seed;
  const next = (): number => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff - 0.5;
  };
  return Array.from({ length: n }, () => Array.from({ length: dim }, next));
}

describe("StorageNode", () => {
  it("creates shards from DDL, applies writes, and searches like brute force", async () => {
    const journal = new FakeJournal(1);
    const dir = await tempDir();
    journal.createCollection(0, { name: "c", dimension: 8 }, [0]);
    const vectors = rand(300, 8);
    for (let i = 0; i < 300; i += 30) {
      journal.write(0, "c", 0, vectors.slice(i, i + 30).map((v, k) => ({ id: `r${i + k}`, vector: v, metadata: { parity: (i + k) % 2 === 0 ? "even" : "odd" } })));
    }
    const node = await openNode(dir, journal);
    await caughtUp(node, journal);
    const shard = node.shard("c", 0);
    expect(shard.store.liveRecords).toBe(300);
    expect(shard.index.size).toBe(300);
    const q = Float32Array.from(vectors[7]!);
    const hits = shard.search(q, { k: 5, ef: 300 });
    const brute = vectors
      .map((v, i) => ({ id: `r${i}`, score: exactScore("cosine", q, Float32Array.from(v)) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, 5);
    expect(hits.map((h) => h.id)).toEqual(brute.map((b) => b.id));
    expect(hits[0]!.id).toBe("r7");
    expect(hits[0]!.score).toBeCloseTo(1, 5);
  });

  it("upsert replaces, delete removes, and replay is exactly-once", async () => {
    const journal = new FakeJournal(1);
    const dir = await tempDir();
    journal.createCollection(0, { name: "c", dimension: 2 }, [0]);
    journal.write(0, "c", 0, [{ id: "a", vector: [1, 0] }, { id: "b", vector: [0, 1] }]);
    journal.write(0, "c", 0, [{ id: "a", vector: [0, 1], metadata: { v: 2 } }]);
    journal.write(0, "c", 0, [], ["b"]);
    let node = await openNode(dir, journal);
    await caughtUp(node, journal);
    let shard = node.shard("c", 0);
    expect(shard.get(["a", "b"]).map((r) => [r.id, Array.from(r.vector), r.metadataJson])).toEqual([["a", [0, 1], '{"v":2}']]);
    expect(shard.search(Float32Array.from([0, 1]), { k: 2, ef: 10 }).map((h) => h.id)).toEqual(["a"]);
    expect(shard.store.liveRecords).toBe(1); // kept by apply(), not counted by a scan
    await node.close();
    // Restart: the cursor may be behind (it is persisted lazily); nothing is applied twice.
    journal.write(0, "c", 0, [{ id: "b", vector: [1, 1] }]);
    node = await openNode(dir, journal);
    await caughtUp(node, journal);
    shard = node.shard("c", 0);
    expect(shard.store.liveRecords).toBe(2);
    expect(shard.index.size).toBe(2);
    expect(shard.get(["b"])[0]!.offset).toBe(5);
  });

  it("waits for the read target, and fails clearly instead of answering stale", async () => {
    const journal = new FakeJournal(1);
    const dir = await tempDir();
    journal.createCollection(0, { name: "c", dimension: 2 }, [0]);
    const node = await openNode(dir, journal);
    await caughtUp(node, journal);
    const signal = new AbortController().signal;
    const later = node.waitFor(0, { minOffset: 3, minTs: 0n }, 5000, signal);
    journal.tick(0);
    journal.write(0, "c", 0, [{ id: "a", vector: [1, 0] }]);
    const pos = await later;
    expect(pos.offset).toBeGreaterThanOrEqual(3);
    expect(node.shard("c", 0).get(["a"])).toHaveLength(1);
    await expect(node.waitFor(0, { minOffset: 99, minTs: 0n }, 50, signal)).rejects.toBeInstanceOf(DeadlineExceededError);
    await expect(node.waitFor(0, { minOffset: 0, minTs: 1n << 62n }, 50, signal)).rejects.toThrow(/rather than answer from older data/);
  });

  it("restores the index from a checkpoint or rebuilds it from SQLite, with the same answers", async () => {
    const journal = new FakeJournal(1);
    const dir = await tempDir();
    journal.createCollection(0, { name: "c", dimension: 4 }, [0]);
    const vectors = rand(200, 4, 7);
    journal.write(0, "c", 0, vectors.map((v, i) => ({ id: `r${i}`, vector: v })));
    let node = await openNode(dir, journal, { checkpointEveryWrites: 1 });
    await caughtUp(node, journal);
    const q = Float32Array.from([0.1, -0.2, 0.3, 0.05]);
    const before = node.shard("c", 0).search(q, { k: 10, ef: 200 }).map((h) => h.id);
    await node.close();
    // After the checkpoint, more writes: the restore replays them from SQLite.
    journal.write(0, "c", 0, [{ id: "late", vector: [0.1, -0.2, 0.3, 0.05] }], ["r0"]);
    node = await openNode(dir, journal);
    await caughtUp(node, journal);
    const after = node.shard("c", 0).search(q, { k: 10, ef: 200 }).map((h) => h.id);
    expect(after[0]).toBe("late");
    expect(after.slice(1)).toEqual(before.filter((id) => id !== "r0").slice(0, 9));
    await node.close();
    // Corrupt the checkpoint: the shard rebuilds from SQLite and answers the same.
    const collectionDir = (await readdir(join(dir, "storage"))).find((d) => d.startsWith("c."))!;
    await writeFile(join(dir, "storage", collectionDir, "shard-0", "index.usearch"), "garbage");
    node = await openNode(dir, journal);
    await caughtUp(node, journal);
    expect(node.shard("c", 0).search(q, { k: 10, ef: 200 }).map((h) => h.id)).toEqual(after);
    expect(node.shard("c", 0).index.size).toBe(200);
  });

  it("filters: exact scoring for selective filters and oversampled HNSW for broad ones", async () => {
    const journal = new FakeJournal(1);
    const dir = await tempDir();
    journal.createCollection(0, { name: "c", dimension: 6 }, [0]);
    const vectors = rand(400, 6, 3);
    journal.write(0, "c", 0, vectors.map((v, i) => ({ id: `r${String(i).padStart(3, "0")}`, vector: v, metadata: { bucket: i % 40 === 0 ? "rare" : i % 2 === 0 ? "even" : "odd" } })));
    const node = await openNode(dir, journal, { exactThreshold: 20 });
    await caughtUp(node, journal);
    const shard = node.shard("c", 0);
    const where = (bucket: string) => ({ sql: `json_extract(metadata, '$."bucket"') = ?`, params: [bucket] });
    const q = Float32Array.from(vectors[11]!);
    for (const bucket of ["rare", "odd"]) {
      const expected = vectors
        .map((v, i) => ({ i, v }))
        .filter(({ i }) => (i % 40 === 0 ? "rare" : i % 2 === 0 ? "even" : "odd") === bucket)
        .map(({ i, v }) => ({ id: `r${String(i).padStart(3, "0")}`, score: exactScore("cosine", q, Float32Array.from(v)) }))
        .sort((a, b) => b.score - a.score)
        .slice(0, 5)
        .map((h) => h.id);
      expect(shard.search(q, { k: 5, ef: 400, filter: where(bucket) }).map((h) => h.id), bucket).toEqual(expected);
    }
    expect(shard.page(where("rare"), "", 3).map((r) => r.id)).toEqual(["r000", "r040", "r080"]);
    expect(shard.page(where("rare"), "r080", 100)).toHaveLength(7);
  });

  it("drops shards in journal order, and a read of a dropped collection is NOT_FOUND", async () => {
    const journal = new FakeJournal(2);
    const dir = await tempDir();
    journal.createCollection(0, { name: "c", dimension: 2, shards: 2 }, [0]);
    journal.createCollection(1, { name: "c", dimension: 2, shards: 2 }, [1]);
    journal.write(0, "c", 0, [{ id: "a", vector: [1, 0] }]);
    journal.write(1, "c", 1, [{ id: "b", vector: [0, 1] }]);
    const node = await openNode(dir, journal);
    await caughtUp(node, journal, 0);
    await caughtUp(node, journal, 1);
    expect(node.hostedShards().map((s) => s.key).sort()).toEqual(["c/0", "c/1"]);
    journal.dropCollection(0, "c");
    journal.dropCollection(1, "c");
    await caughtUp(node, journal, 0);
    await caughtUp(node, journal, 1);
    expect(node.hostedShards()).toHaveLength(0);
    expect(() => node.shard("c", 0)).toThrow(NotFoundError);
    // Nothing of the dropped collection is left on disk.
    expect((await readdir(join(dir, "storage"))).filter((d) => d.startsWith("c."))).toEqual([]);
  });

  it("migrates a registry written before uids were kept, and keeps its replicas", async () => {
    const journal = new FakeJournal(1);
    const dir = await tempDir();
    journal.createCollection(0, { name: "c", dimension: 2 }, [0]);
    journal.write(0, "c", 0, [{ id: "a", vector: [1, 0] }]);
    let node = await openNode(dir, journal);
    await caughtUp(node, journal);
    await node.close();
    // Turn the registry back into the old shape (no uid column).
    const db = new Database(join(dir, "storage", "node.sqlite"));
    db.exec("ALTER TABLE shards DROP COLUMN uid");
    db.close();
    node = await openNode(dir, journal);
    await caughtUp(node, journal);
    expect(node.shard("c", 0).get(["a"])).toHaveLength(1);
    expect(node.shard("c", 0).uid).toBe("");
  });
});
