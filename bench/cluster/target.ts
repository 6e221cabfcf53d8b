// The local cluster as the search benchmark's Vecraft target: `startCluster` (the launcher
// behind `vecraft cluster up`) on a temporary data directory, seen through the same
// interface as the standalone (so bench/search's ingest and sweep run unchanged), plus
// what only a cluster has: CPU per role, and waiting on the replicas' applied offsets.
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { startCluster, type ClusterEvent, type ClusterProcess, type RunningCluster } from "@vecraft/cli";
import { VecraftService } from "@vecraft/rpc";
import { parsePrometheus } from "../journal/stats.js";
import type { Standalone, VecraftClient } from "../search/standalone.js";
import { repoRoot } from "../support/server-process.js";
import { join } from "node:path";

export interface ClusterShape {
  readonly partitions: number;
  readonly storageNodes: number;
  readonly queryProcessors: number;
  readonly gateways: number;
}

export interface ClusterTarget extends Standalone {
  readonly cluster: RunningCluster;
  /** Processes that exited without being asked to (the run is then suspect). */
  readonly unexpectedExits: readonly Extract<ClusterEvent, { type: "exited" }>[];
  /** Each process's /metrics, by process name (an unreachable one is absent). */
  metricsByProcess(): Promise<Map<string, Map<string, number>>>;
}

/** Whose CPU a window counts: every process of one role. */
export const CPU_ROLES = ["storage", "query", "gateway", "journal", "meta", "etcd"] as const;

/**
 * One process's /metrics, tried three times: fetch's pooled keep-alive connection can be
 * closed by the server just as it is reused. A process that still does not answer is
 * absent from the result (and an exit is reported by the launcher).
 */
async function scrape(p: ClusterProcess): Promise<Map<string, number> | undefined> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      const res = await fetch(`${p.url}/metrics`, { signal: AbortSignal.timeout(10_000) });
      if (res.ok) return parsePrometheus(await res.text());
    } catch {
      // Retried below.
    }
    await sleep(200 * attempt);
  }
  return undefined;
}

export async function startClusterTarget(dataDir: string, shape: ClusterShape, log: (s: string) => void): Promise<ClusterTarget> {
  const unexpectedExits: Extract<ClusterEvent, { type: "exited" }>[] = [];
  const cluster = await startCluster({
    dataDir,
    ...shape,
    logLevel: "warn",
    servicesDir: join(repoRoot, "services"),
    // Ten processes start on two cores.
    readyTimeoutMs: 90_000,
    stopGraceMs: 15_000,
    onEvent: (e) => {
      if (e.type === "ready") log(`  ${e.name} ready on ${e.url} (${e.ms} ms)`);
      if (e.type === "exited") {
        unexpectedExits.push(e);
        log(`cluster: ${e.name} exited unexpectedly (code ${e.code}, signal ${e.signal}); last lines of ${e.logFile}:\n${e.tail}`);
      }
    },
  });
  const gateways = cluster.endpoints.gateways;
  let next = 0;
  const metricsByProcess = async (): Promise<Map<string, Map<string, number>>> => {
    const out = new Map<string, Map<string, number>>();
    const scraped = await Promise.all(cluster.processes.map(async (p) => [p.name, await scrape(p)] as const));
    for (const [name, m] of scraped) if (m) out.set(name, m);
    return out;
  };
  const gateway0 = cluster.byRole("gateway")[0]!;
  return {
    cluster,
    unexpectedExits,
    metricsByProcess,
    url: gateways[0]!,
    pid: gateway0.pid ?? -1,
    args: [],
    // Each new client talks to the next gateway, so the search connections use all of them.
    newClient: (): VecraftClient => createClient(VecraftService, createGrpcTransport({ baseUrl: gateways[next++ % gateways.length]! })),
    // The whole cluster as one server: counters and histograms summed over every process.
    // A sum missing a process would make every delta over the window wrong, so it throws.
    async metrics() {
      const all = await metricsByProcess();
      const missing = cluster.processes.filter((p) => !all.has(p.name)).map((p) => p.name);
      if (missing.length > 0) throw new Error(`no /metrics from ${missing.join(", ")}`);
      const sum = new Map<string, number>();
      for (const m of all.values()) for (const [k, v] of m) sum.set(k, (sum.get(k) ?? 0) + v);
      return sum;
    },
    outputTail: () => cluster.processes.map((p) => `--- ${p.name} (${p.logFile})\n${p.logTail(20)}`).join("\n"),
    async stop() {
      await cluster.stop();
      return { code: 0, signal: null };
    },
  };
}

/** CPU seconds per role between two metricsByProcess() snapshots. */
export function cpuByRole(cluster: RunningCluster, m0: Map<string, Map<string, number>>, m1: Map<string, Map<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of cluster.processes) {
    const a = m0.get(p.name)?.get("process_cpu_seconds_total");
    const b = m1.get(p.name)?.get("process_cpu_seconds_total");
    out[p.role] = (out[p.role] ?? 0) + (a !== undefined && b !== undefined ? b - a : Number.NaN);
  }
  return out;
}

export interface Placement {
  readonly collection: string;
  /** Per shard: the nodes holding it, with their applied offset and lag. */
  readonly shards: { shard: number; partition: number; node: string; appliedOffset: string; lag: string; serving: boolean }[];
}

/**
 * Waits until every replica of `collections` serves and has nothing committed left to
 * apply (GetClusterStatus: lag 0), i.e. everything acknowledged is searchable everywhere.
 */
export async function waitApplied(client: VecraftClient, collections: readonly string[], timeoutMs: number): Promise<Placement[]> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const st = await client.getClusterStatus({}, { timeoutMs: 10_000 });
    const placements = collections.map((c) => ({
      collection: c,
      shards: st.shardReplicas
        .filter((r) => r.collection === c)
        .sort((a, b) => a.shard - b.shard || a.node.localeCompare(b.node))
        .map((r) => ({ shard: r.shard, partition: r.partition, node: r.node, appliedOffset: String(r.appliedOffset), lag: String(r.lag), serving: r.serving })),
    }));
    const done = placements.every((p) => p.shards.length > 0 && p.shards.every((s) => s.serving && s.lag === "0"));
    if (done) return placements;
    if (performance.now() > deadline) throw new Error(`replicas not caught up after ${timeoutMs} ms: ${JSON.stringify(placements)}`);
    await sleep(500);
  }
}
