// A real cluster of separate processes (etcd, meta-manager, journal with 3 partitions,
// 3 storage nodes, 2 query processors, 2 gateways; the launcher of `vecraft cluster up`)
// against a real standalone process on the same data: the same searches answer the same
// ids, writes through one gateway are visible through the other (SESSION with the
// writer's token, and STRONG), and the cluster status shows 4 shards x 2 replicas on
// distinct storage nodes, all serving.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JsonObject } from "@bufbuild/protobuf";
import { BufferWriter, runCli } from "@vecraft/cli";
import { createVecraftClient, type CollectionSpec, type RecordInput, type ShardReplicaStatus, type VecraftClient, type WriteResult } from "@vecraft/client";
import { prng, startTestCluster, type TestCluster } from "../support/cluster.js";
import { startVecraft, type VecraftProcess } from "./standalone-process.js";

const DIM = 16;
const N = 2_000;
const SHARDS = 4;
const RF = 2;
const COLORS = ["red", "green", "blue", "black"] as const;
/** Candidate list larger than any shard: HNSW then visits every vector, so results are exact. */
const EF = N;

function makeRecords(n: number, seed: number, prefix: string): RecordInput[] {
  const rand = prng(seed);
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}${i}`,
    vector: Array.from({ length: DIM }, () => rand() * 2 - 1),
    metadata: { color: COLORS[Math.floor(rand() * COLORS.length)]!, n: i },
  }));
}

function l2(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s;
}

/** The k nearest ids by brute force (ties by id, as the query processor's merge). */
function bruteForce(records: readonly RecordInput[], q: readonly number[], k: number, color?: string): string[] {
  return records
    .filter((r) => color === undefined || (r.metadata as JsonObject)["color"] === color)
    .map((r) => ({ id: r.id, d: l2(r.vector as number[], q) }))
    .sort((x, y) => x.d - y.d || (x.id < y.id ? -1 : 1))
    .slice(0, k)
    .map((x) => x.id);
}

const spec = (replicationFactor: number): CollectionSpec => ({
  name: "points",
  dimension: DIM,
  metric: "l2",
  shards: SHARDS,
  replicationFactor,
  fields: [
    { name: "color", type: "string", indexed: true },
    { name: "n", type: "int" },
  ],
});

/** The offset of the last write each partition acknowledged to the cluster's writers. */
const written = new Map<number, bigint>();
function note(w: WriteResult): WriteResult {
  for (const e of w.entries) if (e.offset > (written.get(e.partition) ?? -1n)) written.set(e.partition, e.offset);
  return w;
}

async function load(client: VecraftClient, records: readonly RecordInput[], track: boolean): Promise<void> {
  for (let i = 0; i < records.length; i += 500) {
    const w = await client.upsert("points", records.slice(i, i + 500));
    if (track) note(w);
  }
}

let tc: TestCluster;
let standalone: VecraftProcess;
let standaloneClient: VecraftClient;
let root: string;
const records = makeRecords(N, 42, "p");
const queries = makeRecords(20, 7, "q").map((r) => r.vector as number[]);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "vecraft-cluster-standalone-"));
  [tc, standalone] = await Promise.all([
    startTestCluster({ partitions: 3, storageNodes: 3, queryProcessors: 2, gateways: 2 }),
    startVecraft(join(root, "data"), ["--partitions", "3"]),
  ]);
  standaloneClient = createVecraftClient({ baseUrl: standalone.url });
  const [a] = tc.clients;
  // Standalone has one storage node: one replica per shard, the same 4 shards.
  await Promise.all([a!.createCollection(spec(RF)), standaloneClient.createCollection(spec(1))]);
  await Promise.all([load(a!, records, true), load(standaloneClient, records, false)]);
}, 90_000);

afterAll(async () => {
  standaloneClient?.close();
  await Promise.allSettled([tc?.stop(), standalone?.stop()]);
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

describe("a cluster of separate processes", () => {
  it("answers the same searches as standalone on the same data, unfiltered and filtered", async () => {
    const [a, b] = tc.clients;
    for (const [i, q] of queries.entries()) {
      const color = i % 2 === 0 ? undefined : COLORS[i % COLORS.length]!;
      const opts = { k: 10, ef: EF, consistency: "strong" as const, ...(color !== undefined ? { filter: { color } } : {}) };
      const expected = bruteForce(records, q, 10, color);
      // Alternate gateways so that both query processors take part.
      const via = i % 4 < 2 ? a! : b!;
      const [fromCluster, fromStandalone] = await Promise.all([via.search("points", q, opts), standaloneClient.search("points", q, opts)]);
      const ids = fromCluster.hits.map((h) => h.id);
      expect(ids, `query ${i} (filter ${color ?? "none"}): cluster vs standalone`).toEqual(fromStandalone.hits.map((h) => h.id));
      expect(ids, `query ${i} (filter ${color ?? "none"}): cluster vs brute force`).toEqual(expected);
    }
  });

  it("makes writes through gateway A visible through gateway B with SESSION (A's token) and STRONG reads", async () => {
    const [a] = tc.clients;
    const fresh = makeRecords(50, 99, "s");
    const w = note(await a!.upsert("points", fresh));
    // A new client of gateway B that has never written: only A's token ties it to A's write.
    const b = tc.client(1);
    const got = await b.get(
      "points",
      fresh.map((r) => r.id),
      { consistency: { level: "session", sessionToken: w.sessionToken } },
    );
    expect(got.missingIds).toEqual([]);
    expect(got.records).toHaveLength(fresh.length);
    expect(BigInt(got.readTs)).toBeGreaterThanOrEqual(BigInt(w.sessionToken));
    const hit = await b.search("points", fresh[7]!.vector, { k: 1, ef: EF, consistency: { level: "session", sessionToken: w.sessionToken } });
    expect(hit.hits[0]?.id).toBe("s7");

    const more = makeRecords(20, 123, "t");
    note(await a!.upsert("points", more));
    const strong = await tc.client(1).get(
      "points",
      more.map((r) => r.id),
      { consistency: "strong" },
    );
    expect(strong.missingIds).toEqual([]);
    const del = note(await a!.delete("points", ["t3"]));
    const afterDelete = await tc.client(1).get("points", ["t3"], { consistency: { level: "session", sessionToken: del.sessionToken } });
    expect(afterDelete.missingIds).toEqual(["t3"]);
  });

  it("reports 4 shards x 2 replicas on distinct storage nodes, all serving", async () => {
    const storageIds = tc.cluster.byRole("storage").map((p) => p.name);
    const caughtUp = (r: ShardReplicaStatus): boolean => r.serving && r.appliedOffset >= (written.get(r.partition) ?? 0n);
    let status = await tc.clients[1]!.getClusterStatus();
    // Each replica reports for itself; give the last writes a moment to apply everywhere.
    for (let i = 0; i < 100 && !status.shardReplicas.every(caughtUp); i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await tc.clients[1]!.getClusterStatus();
    }
    for (const id of storageIds) expect(status.nodes.find((n) => n.id === id)?.alive, `node ${id} alive`).toBe(true);
    expect(status.partitions.map((p) => p.partition).sort()).toEqual([0, 1, 2]);
    for (const p of status.partitions) expect(p.leader, `partition ${p.partition} leader`).toBe("journal-0");
    const replicas = status.shardReplicas.filter((r) => r.collection === "points");
    expect(replicas).toHaveLength(SHARDS * RF);
    for (let shard = 0; shard < SHARDS; shard++) {
      const mine = replicas.filter((r) => r.shard === shard);
      const nodes = mine.map((r) => r.node);
      expect(new Set(nodes).size, `shard ${shard} replicas on distinct nodes: ${nodes.join(",")}`).toBe(RF);
      for (const n of nodes) expect(storageIds).toContain(n);
      for (const r of mine) {
        expect(r.serving, `shard ${shard} on ${r.node} serving`).toBe(true);
        // Every replica has applied every write acknowledged to its partition.
        expect(r.appliedOffset, `shard ${shard} on ${r.node} applied offset`).toBeGreaterThanOrEqual(written.get(r.partition) ?? 0n);
      }
    }
    // Every storage node hosts some replica (8 replicas over 3 nodes: 3, 3, 2).
    expect(new Set(replicas.map((r) => r.node)).size).toBe(storageIds.length);
  });

  it("prints the same status through `vecraft cluster status`", async () => {
    const stdout = new BufferWriter();
    const stderr = new BufferWriter();
    const code = await runCli(["cluster", "status", "--url", tc.gateways[0]!], { stdout, stderr });
    expect(stderr.text).toBe("");
    expect(code).toBe(0);
    expect(stdout.text).toMatch(/^NODES \(\d+\)/);
    expect(stdout.text).toContain("PARTITIONS (3)");
    expect(stdout.text).toContain(`SHARD REPLICAS (${SHARDS * RF})`);
    for (const p of tc.cluster.byRole("storage")) expect(stdout.text).toContain(p.name);
  });

  it("had no process die on its own", () => {
    expect(tc.unexpectedExits.map((e) => `${e.name}: ${e.tail}`)).toEqual([]);
  });
});
