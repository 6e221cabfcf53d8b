// Storage node failures in a real cluster (etcd, meta-manager, journal with 3 partitions,
// 4 storage nodes, 2 query processors, 2 gateways; a collection of 4 shards x 2 replicas):
// 1. kill -9 of a storage node during searches and ingest: no search fails (the query
//    processors retry on the other replica; the searching clients do not retry), ingest
//    goes on, every acknowledged write stays readable; once its lease expires the
//    meta-manager moves its replicas to live nodes, which bootstrap from a peer's snapshot,
//    catch up, and answer exactly as their peers.
// 2. A storage node restarted after kill -9 (before its lease expires: no failover) opens
//    its shards from its own files, catches up on the writes it missed, and answers as its
//    peers.
// storage-0..2 hold 3 s leases (so that failover starts soon); storage-3 holds a 60 s
// lease, so that its restart in test 2 comes well within it, and checkpoints its indexes
// every 50 writes (journal entries), so that it restores them from a checkpoint.
import { statSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import type { ClusterStatus, RecordInput, ShardReplicaStatus, VecraftClient, WriteResult } from "@vecraft/client";
import { ReadTargetSchema } from "@vecraft/rpc";
import { fastFailover, logLines, metricSum, poll, prng, randomRecords, startTestCluster, storageClient, type TestCluster } from "../support/cluster.js";

const DIM = 16;
const N = 3_000;
const SHARDS = 4;
const RF = 2;
const C = "points";
/** Larger than any shard: HNSW visits every vector, so replicas must agree exactly. */
const EF = N;
const FAST_LEASE = "storage-0";
const SLOW_LEASE = "storage-3";

let tc: TestCluster;
/** The offset of the last acknowledged write of each partition. */
const written = new Map<number, bigint>();
/** Every id whose upsert was acknowledged. */
const acked = new Set<string>();

function note(w: WriteResult): void {
  for (const e of w.entries) if (e.offset > (written.get(e.partition) ?? -1n)) written.set(e.partition, e.offset);
}

async function upsert(client: VecraftClient, records: readonly RecordInput[], requestId: string): Promise<void> {
  note(await client.upsert(C, records, { requestId }));
  for (const r of records) acked.add(r.id);
}

const status = (): Promise<ClusterStatus> => tc.clients[0]!.getClusterStatus();
const replicasOf = (s: ClusterStatus): ShardReplicaStatus[] => s.shardReplicas.filter((r) => r.collection === C);
const addressOf = (s: ClusterStatus, node: string): string => {
  const n = s.nodes.find((x) => x.id === node);
  if (n === undefined) throw new Error(`node ${node} is not in the catalog`);
  return n.address;
};

/** Every shard has RF serving replicas on distinct live nodes, none of them on `without`. */
function placedAndServing(s: ClusterStatus, without?: string): boolean {
  const reps = replicasOf(s);
  if (without !== undefined && reps.some((r) => r.node === without)) return false;
  for (let shard = 0; shard < SHARDS; shard++) {
    const mine = reps.filter((r) => r.shard === shard);
    if (mine.length !== RF || new Set(mine.map((r) => r.node)).size !== RF || !mine.every((r) => r.serving)) return false;
  }
  return true;
}

/** Waits until every replica has applied the last acknowledged write and the replicas of each shard stand at the same offset. */
async function converged(): Promise<ClusterStatus> {
  let last: ClusterStatus | undefined;
  return poll(
    "every replica of every shard at the same applied offset, at least the partition's last write",
    async () => {
      const s = (last = await status());
      if (!placedAndServing(s)) return undefined;
      for (let shard = 0; shard < SHARDS; shard++) {
        const mine = replicasOf(s).filter((r) => r.shard === shard);
        const offsets = new Set(mine.map((r) => r.appliedOffset));
        if (offsets.size !== 1 || mine[0]!.appliedOffset < (written.get(mine[0]!.partition) ?? 0n)) return undefined;
      }
      return s;
    },
    {
      describe: () =>
        replicasOf(last ?? { nodes: [], partitions: [], shardReplicas: [] })
          .map((r) => `${r.shard}@${r.node}:${r.appliedOffset}${r.serving ? "" : "(not serving)"}`)
          .join(" ") + ` written ${[...written].map(([p, o]) => `p${p}:${o}`).join(" ")}`,
    },
  );
}

/** Each replica of each shard, asked directly (StorageService.SearchShard), returns the same ids. */
async function expectReplicasAgree(s: ClusterStatus, queries: readonly number[][]): Promise<void> {
  for (let shard = 0; shard < SHARDS; shard++) {
    const mine = replicasOf(s).filter((r) => r.shard === shard);
    for (const [qi, q] of queries.entries()) {
      const answers = await Promise.all(
        mine.map(async (r) => {
          const res = await storageClient(addressOf(s, r.node)).searchShard({
            collection: C,
            shard,
            vectorF32: new Uint8Array(Float32Array.from(q).buffer),
            k: 10,
            ef: EF,
            read: create(ReadTargetSchema, { minOffset: written.get(r.partition) ?? 0n, waitMs: 10_000 }),
          });
          return { node: r.node, ids: res.hits.map((h) => h.id) };
        }),
      );
      expect(answers[0]!.ids.length, `shard ${shard} query ${qi} on ${answers[0]!.node}`).toBeGreaterThan(0);
      for (const a of answers.slice(1)) expect(a.ids, `shard ${shard} query ${qi}: ${a.node} vs ${answers[0]!.node}`).toEqual(answers[0]!.ids);
    }
  }
}

async function expectAllAckedReadable(): Promise<void> {
  const ids = [...acked];
  const missing: string[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const got = await tc.clients[i % 2]!.get(C, ids.slice(i, i + 500), { consistency: "strong" });
    missing.push(...got.missingIds);
  }
  expect(missing, `acknowledged writes missing (of ${ids.length})`).toEqual([]);
}

/** Searches without client retries until `stop`; counts oks and keeps the failures. */
function searchLoop(client: VecraftClient, seed: number, stop: AbortSignal): { ok: number; failures: string[]; done: Promise<void> } {
  const out = { ok: 0, failures: [] as string[], done: Promise.resolve() };
  const rand = prng(seed);
  out.done = (async () => {
    for (let i = 0; !stop.aborted; i++) {
      const q = Array.from({ length: DIM }, () => rand() * 2 - 1);
      const consistency = i % 2 === 0 ? ("eventual" as const) : ("bounded" as const);
      try {
        const res = await client.search(C, q, { k: 10, consistency });
        if (res.hits.length === 10) out.ok++;
        else out.failures.push(`${consistency} search ${i} returned ${res.hits.length} hits`);
      } catch (e) {
        out.failures.push(`${consistency} search ${i}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  })();
  return out;
}

/** Upserts batches of 20 (alternating gateways; the SDK retries a failed batch with the same request id) until `stop`. */
function ingestLoop(clients: readonly VecraftClient[], prefix: string, stop: AbortSignal): { acked: number; errors: string[]; done: Promise<void> } {
  const out = { acked: 0, errors: [] as string[], done: Promise.resolve() };
  out.done = (async () => {
    for (let batch = 0; !stop.aborted; batch++) {
      const records = randomRecords(20, DIM, 1000 + batch, `${prefix}${batch}-`);
      const requestId = `${prefix}-batch-${batch}`;
      // The SDK retries within its budget; past it, this loop tries again with the same id.
      for (let attempt = 0; ; attempt++) {
        try {
          await upsert(clients[batch % clients.length]!, records, requestId);
          out.acked++;
          break;
        } catch (e) {
          out.errors.push(`batch ${batch} attempt ${attempt}: ${e instanceof Error ? e.message : String(e)}`);
          if (attempt >= 5) throw e;
        }
      }
    }
  })();
  return out;
}

beforeAll(async () => {
  tc = await startTestCluster({
    partitions: 3,
    storageNodes: 4,
    queryProcessors: 2,
    gateways: 2,
    logLevel: "info",
    extraArgs: {
      ...fastFailover(3_000),
      // Checkpoints its indexes often, so that its restart restores them from a checkpoint.
      [SLOW_LEASE]: ["--lease-ttl-ms=60000", "--checkpoint-every-writes=50"],
    },
  });
  const [a] = tc.clients;
  await a!.createCollection({ name: C, dimension: DIM, metric: "l2", shards: SHARDS, replicationFactor: RF, fields: [{ name: "n", type: "int" }] });
  const records = randomRecords(N, DIM, 42, "p");
  for (let i = 0; i < records.length; i += 500) await upsert(a!, records.slice(i, i + 500), `load-${i}`);
  await converged();
}, 90_000);

afterAll(async () => {
  await tc?.stop();
});

const queries = Array.from({ length: 5 }, (_, i) => randomRecords(1, DIM, 500 + i, "q")[0]!.vector as number[]);

describe("storage node failures", () => {
  it("kill -9 of a storage node during searches and ingest: no search fails, ingest goes on, its replicas move and catch up", async () => {
    const before = await status();
    const victim = FAST_LEASE;
    const victimShards = replicasOf(before)
      .filter((r) => r.node === victim)
      .map((r) => r.shard);
    expect(victimShards.length, `${victim} hosts replicas`).toBeGreaterThan(0);

    const stop = new AbortController();
    const searches = [searchLoop(tc.client(0, { retry: false }), 1, stop.signal), searchLoop(tc.client(1, { retry: false }), 2, stop.signal)];
    const ingest = ingestLoop(tc.clients, "w", stop.signal);
    const settle = async (): Promise<void> => {
      stop.abort();
      await Promise.all([...searches.map((s) => s.done), ingest.done]);
    };
    try {
      await poll("searches and writes under way", () => (searches.every((s) => s.ok >= 10) && ingest.acked >= 5 ? true : undefined));
      const ackedBeforeKill = ingest.acked;
      const killedAt = Date.now();
      await tc.kill9(victim);
      let last: ClusterStatus | undefined;
      const healed = await poll(
        "the dead node's replicas moved to live nodes, all serving",
        async () => (placedAndServing((last = await status()), victim) ? last : undefined),
        {
          timeoutMs: 60_000,
          everyMs: 250,
          describe: () =>
            replicasOf(last ?? before)
              .map((r) => `${r.shard}@${r.node}${r.serving ? "" : "(not serving)"}`)
              .join(" "),
        },
      );
      const healMs = Date.now() - killedAt;
      // A few more writes and searches on the healed cluster.
      const ackedAtHeal = ingest.acked;
      await poll("writes after the heal", () => (ingest.acked >= ackedAtHeal + 3 ? true : undefined));
      await settle();

      const searched = searches.reduce((n, s) => n + s.ok, 0);
      const qps = tc.cluster.byRole("query");
      const retried = (await Promise.all(qps.map((p) => metricSum(p.url, "vecraft_query_replica_retries_total")))).reduce((a, b) => a + b, 0);
      console.log(
        `failover: ${searched} searches ok (query processors retried ${retried} shard reads on another replica), ${ingest.acked} batches acked (${ingest.acked - ackedBeforeKill} after the kill, ${ingest.errors.length} SDK-level failures), healed ${healMs} ms after kill -9 of ${victim}`,
      );
      expect(searches.flatMap((s) => s.failures)).toEqual([]);
      expect(ingest.acked).toBeGreaterThan(ackedBeforeKill);

      // The moved replicas: placed on live nodes that did not have them, bootstrapped from a peer's snapshot.
      const moved = replicasOf(healed).filter(
        (r) => victimShards.includes(r.shard) && !replicasOf(before).some((b) => b.shard === r.shard && b.node === r.node),
      );
      expect(moved.map((r) => r.shard).sort(), "every replica of the dead node was replaced").toEqual([...victimShards].sort());
      for (const r of moved) {
        const lines = logLines(tc.process(r.node).logFile).filter((l) => l["collection"] === C && l["shard"] === r.shard);
        const serving = lines.find((l) => l["msg"] === "shard replica serving");
        expect(serving?.["source"], `${r.node} shard ${r.shard}: "shard replica serving" log line`).toBe("snapshot");
        expect(lines.some((l) => l["msg"] === "shard snapshot installed; catching up")).toBe(true);
      }
      const nodes = [...new Set(moved.map((r) => r.node))];
      const fromSnapshots = await Promise.all(
        nodes.map((n) => metricSum(tc.process(n).url, "vecraft_storage_bootstraps_total", { source: "snapshot", outcome: "completed" })),
      );
      expect(fromSnapshots.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(moved.length);

      const s = await converged();
      expect(replicasOf(s).some((r) => r.node === victim)).toBe(false);
      expect(s.nodes.find((n) => n.id === victim)?.alive ?? false).toBe(false);
      await expectAllAckedReadable();
      await expectReplicasAgree(s, queries);
    } finally {
      await settle();
    }
  });

  it("a storage node restarted after kill -9 opens its shards from its own data and catches up", async () => {
    const victim = SLOW_LEASE;
    const before = await converged();
    const hosted = replicasOf(before).filter((r) => r.node === victim);
    expect(hosted.length, `${victim} hosts replicas`).toBeGreaterThan(0);
    // What its files hold at the kill (nothing is written between here and the kill).
    const own = await storageClient(addressOf(before, victim)).getStorageStatus({});
    const preKill = new Map(own.shards.filter((x) => x.collection === C).map((x) => [x.shard, x.records]));
    // Replicas that took 50 writes since they were created or installed have an index checkpoint.
    const checkpointed = new Set(own.shards.filter((x) => x.collection === C && x.checkpointOffset > 0n).map((x) => x.shard));
    expect(checkpointed.size, `${victim} has index checkpoints`).toBeGreaterThan(0);

    await tc.kill9(victim);
    // While it is down (its lease still alive): writes, and searches the query processors route around it.
    const more = randomRecords(600, DIM, 77, "r");
    for (let i = 0; i < more.length; i += 100) await upsert(tc.clients[(i / 100) % 2]!, more.slice(i, i + 100), `down-${i}`);
    const stop = new AbortController();
    const searching = searchLoop(tc.client(1, { retry: false }), 3, stop.signal);
    await poll("searches while the node is down", () => (searching.ok >= 10 ? true : undefined));
    stop.abort();
    await searching.done;
    expect(searching.failures).toEqual([]);

    const logFrom = statSync(tc.process(victim).logFile).size;
    const restartedAt = Date.now();
    await tc.restart(victim);
    const after = await converged();
    const catchUpMs = Date.now() - restartedAt;

    // No replica moved: it kept its shards.
    const shardsOn = (st: ClusterStatus): number[] =>
      replicasOf(st)
        .filter((r) => r.node === victim)
        .map((r) => r.shard)
        .sort();
    expect(shardsOn(after)).toEqual(shardsOn(before));
    const lines = logLines(tc.process(victim).logFile, logFrom).filter((l) => l["collection"] === C);
    const opened = lines.filter((l) => l["msg"] === "shard opened");
    const openedSummary = opened.map(
      (l) => `shard ${String(l["shard"])}: index ${String(l["index"])}, ${String(l["records"])} records, offset ${String(l["appliedOffset"])}`,
    );
    console.log(`restart: ${victim} reopened ${openedSummary.join("; ")}; caught up ${catchUpMs} ms after the restart`);
    for (const r of hosted) {
      const line = opened.find((l) => l["shard"] === r.shard);
      expect(line, `${victim} logged "shard opened" for shard ${r.shard}`).toBeDefined();
      expect(line!["index"], `shard ${r.shard} index restored from its checkpoint, else from its SQLite rows`).toBe(
        checkpointed.has(r.shard) ? "checkpoint" : "rebuilt",
      );
      // It reopened what its files held at the kill, not an empty replica to rebuild.
      expect(BigInt(Number(line!["records"])), `shard ${r.shard} records at open`).toBe(preKill.get(r.shard));
      expect(Number(line!["records"])).toBeGreaterThan(0);
      expect(Number(line!["appliedOffset"])).toBeGreaterThan(0);
    }
    expect(lines.filter((l) => l["msg"] === "bootstrapping shard replica")).toEqual([]);
    expect(await metricSum(tc.process(victim).url, "vecraft_storage_bootstraps_total")).toBe(0);

    // And it applied the writes it missed.
    const caughtUp = await storageClient(addressOf(after, victim)).getStorageStatus({});
    const total = (xs: readonly { collection: string; records: bigint }[]): bigint => xs.filter((x) => x.collection === C).reduce((n, x) => n + x.records, 0n);
    expect(total(caughtUp.shards)).toBeGreaterThan(total(own.shards));
    await expectAllAckedReadable();
    await expectReplicasAgree(after, queries);
  });

  it("had no process die on its own", () => {
    expect(tc.unexpectedExits.map((e) => `${e.name}: ${e.tail}`)).toEqual([]);
  });
});
