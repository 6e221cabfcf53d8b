// Cluster search benchmark: what fan-out costs. One local cluster (etcd, meta-manager,
// journal with 3 partitions, 4 storage nodes, 2 query processors, 2 gateways, each its own
// process), the same Fashion-MNIST vectors in three collections of 1, 2 and 4 shards (one
// replica each, so the shard count is the only variable), then EVENTUAL searches at each
// client count: QPS, p50/p99, recall@10 against exact ground truth and the overlap of the
// merged top 10 with a single usearch index built in-process with the same HNSW settings
// (whose single-threaded QPS is the ratio baseline, measured in the same run).
//
//   pnpm bench:cluster            # = pnpm -s build && tsx bench/cluster/run.ts
//   pnpm -s exec tsx bench/cluster/run.ts --limit 5000 --queries 200 --clients 1,8   # a quick look
//
// Prints tables and writes bench/results/cluster-<timestamp>.json. Nothing is asserted.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, totalmem, tmpdir } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { busyCores, readCpuTimes, waitForQuiet } from "../journal/machine.js";
import { fmt, table } from "../journal/stats.js";
import { bruteForceCheck, groundTruth, head, loadFashionMnist, recallOf, rowF32, DATASET_DIR, DIM } from "../search/dataset.js";
import { runSync, type QueryCell } from "../search/sweep.js";
import { build, type HnswParams, type UsearchBuild } from "../search/usearch-baseline.js";
import { createCollection, ingest, prepareBatches, sweep, type IngestResult, type VecraftCell } from "../search/vecraft.js";
import { intListOption, intOption as int, numberOption } from "../support/options.js";
import { repoRoot } from "../support/server-process.js";
import { CPU_ROLES, cpuByRole, startClusterTarget, waitApplied, type ClusterShape, type ClusterTarget, type Placement } from "./target.js";

const USAGE = `Usage: tsx bench/cluster/run.ts [options]

  --limit <n>           indexed vectors: the first n of the 60,000 train images (default 20000)
  --queries <n>         test queries: the first n of the 10,000 test images (default 1000)
  --shards <list>       one collection per shard count (default 1,2,4)
  --clients <list>      concurrent search clients (default 1,8,32)
  --ef <n>              ef for every search, the collections' ef_search and usearch's (default 64)
  --storage-nodes <n>   (default 4)   --query-processors <n> (default 2)
  --gateways <n>        (default 2)   --partitions <n> journal partitions (default 3)
  --batch <n>           records per Upsert while loading (default 500)
  --inflight <n>        Upserts in flight while loading (default 4)
  --connections <n>     HTTP/2 connections of the search clients, spread over the gateways (default 4)
  --warmup <n>          unrecorded queries before each measured pass (default 100)
  --cell-seconds <n>    upper bound on one measured pass (default 120)
  --rounds <n>          passes per (shards, clients), interleaved; the report shows medians (default 3)
  --quiet-wait <n>      before each pass, wait up to n s for the machine to be quiet (default 20)
  --quiet-cores <x>     quiet = fewer busy cores than this, the idle cluster included (default 0.6)
  --keep-data           keep the cluster's data directory and logs
  --out <dir>           results directory (default bench/results)
  --help                this text
`;

const K = 10;

interface Options {
  limit: number;
  queries: number;
  shards: number[];
  clients: number[];
  ef: number;
  shape: ClusterShape;
  batch: number;
  inflight: number;
  connections: number;
  warmup: number;
  cellSeconds: number;
  rounds: number;
  quietWait: number;
  quietCores: number;
  keepData: boolean;
  out: string;
}

function parseOptions(argv: string[]): Options | undefined {
  const s = { type: "string" } as const;
  const { values: v } = parseArgs({
    args: argv,
    options: {
      limit: s,
      queries: s,
      shards: s,
      clients: s,
      ef: s,
      "storage-nodes": s,
      "query-processors": s,
      gateways: s,
      partitions: s,
      batch: s,
      inflight: s,
      connections: s,
      warmup: s,
      "cell-seconds": s,
      rounds: s,
      "quiet-wait": s,
      "quiet-cores": s,
      "keep-data": { type: "boolean" },
      out: s,
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (v.help) {
    process.stdout.write(USAGE);
    return undefined;
  }
  return {
    limit: int(v.limit, 20_000, "limit", 100, 60_000),
    queries: int(v.queries, 1000, "queries", 1, 10_000),
    shards: intListOption(v.shards, [1, 2, 4], "shards", 1, 16),
    clients: intListOption(v.clients, [1, 8, 32], "clients", 1, 256),
    ef: int(v.ef, 64, "ef", K, 4096),
    shape: {
      storageNodes: int(v["storage-nodes"], 4, "storage-nodes", 1, 16),
      queryProcessors: int(v["query-processors"], 2, "query-processors", 1, 8),
      gateways: int(v.gateways, 2, "gateways", 1, 8),
      partitions: int(v.partitions, 3, "partitions", 1, 64),
    },
    batch: int(v.batch, 500, "batch", 1, 1000),
    inflight: int(v.inflight, 4, "inflight", 1, 64),
    connections: int(v.connections, 4, "connections", 1, 64),
    warmup: int(v.warmup, 100, "warmup", 0, 10_000),
    cellSeconds: int(v["cell-seconds"], 120, "cell-seconds", 1, 3600),
    rounds: int(v.rounds, 3, "rounds", 1, 20),
    quietWait: int(v["quiet-wait"], 20, "quiet-wait", 0, 3600),
    quietCores: numberOption(v["quiet-cores"], 0.6, "quiet-cores", 0.05, 64),
    keepData: v["keep-data"] ?? false,
    out: v.out ?? join(repoRoot, "bench", "results"),
  };
}

interface Cell extends VecraftCell {
  readonly round: number;
  readonly shards: number;
  /** Mean |merged top 10 ∩ single usearch index's top 10| / 10. */
  readonly overlapWithSingleIndex: number;
  /** CPU cores used by each role's processes over the pass (warm-up included). */
  readonly cpuCoresByRole: Record<string, number>;
  /** Over the same window: busy cores machine-wide minus the cluster's and this process's. */
  readonly otherCpuCores: number;
  /** CPU of every cluster process over the pass, per search answered (warm-up included), in ms: what one search costs the cluster. */
  readonly clusterCpuMsPerSearch: number;
  /** The quiet wait before the pass: seconds waited and the last 2 s sample of busy cores. */
  readonly quiet: { waitedSeconds: number; busyCores: number };
}

interface CollectionRun {
  readonly shards: number;
  readonly collection: Record<string, unknown>;
  readonly ingest: IngestResult;
}

/** Mean overlap of two answer lists, query by query (queries either side lacks are skipped). */
function overlap(a: readonly (number[] | undefined)[], b: readonly (number[] | undefined)[]): number {
  let sum = 0;
  let n = 0;
  a.forEach((ids, q) => {
    const ref = b[q];
    if (!ids || !ref) return;
    const set = new Set(ref.slice(0, K));
    sum += ids.slice(0, K).filter((id) => set.has(id)).length / Math.min(K, ref.length || K);
    n++;
  });
  return n > 0 ? sum / n : Number.NaN;
}

function median(xs: readonly number[]): number {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** Per (shards, clients): the median of each figure over the rounds (QPS also min and max). */
function summarize(cells: readonly Cell[], shards: readonly number[], clients: readonly number[]) {
  return shards.flatMap((s) =>
    clients.flatMap((c) => {
      const cs = cells.filter((x) => x.shards === s && x.concurrency === c);
      if (cs.length === 0) return [];
      const m = (f: (x: Cell) => number): number => median(cs.map(f));
      const roles = [...new Set(cs.flatMap((x) => Object.keys(x.cpuCoresByRole)))];
      return [
        {
          shards: s,
          clients: c,
          rounds: cs.length,
          qps: m((x) => x.qps),
          qpsMin: Math.min(...cs.map((x) => x.qps)),
          qpsMax: Math.max(...cs.map((x) => x.qps)),
          p50Ms: m((x) => x.latency.p50Ms),
          p99Ms: m((x) => x.latency.p99Ms),
          recall: m((x) => x.recall),
          overlap: m((x) => x.overlapWithSingleIndex),
          shardSearchMs: m((x) => x.meanShardSearchMs),
          fanoutMs: m((x) => x.meanFanoutMs),
          cpuCoresByRole: Object.fromEntries(roles.map((r) => [r, m((x) => x.cpuCoresByRole[r] ?? Number.NaN)])),
          clientCpuCores: m((x) => x.clientCpuCores),
          otherCpuCores: m((x) => x.otherCpuCores),
          clusterCpuMsPerSearch: m((x) => x.clusterCpuMsPerSearch),
          errors: cs.reduce((a, x) => a + x.errors, 0),
        },
      ];
    }),
  );
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (!opts) return;
  const log = (s: string): boolean => process.stderr.write(`${s}\n`);
  const startedAt = new Date().toISOString();
  const runStamp = startedAt.replace(/[:.]/g, "-");
  mkdirSync(opts.out, { recursive: true });
  const workDir = mkdtempSync(join(tmpdir(), "vecraft-bench-cluster-"));
  const machine = {
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    loadAvgStart: loadavg().map((x) => Math.round(x * 100) / 100),
    loadAvgEnd: [] as number[],
  };
  log(`machine: ${machine.nproc} cpus (${machine.cpuModel}), ${machine.memoryGiB} GiB, node ${machine.node}; load ${machine.loadAvgStart.join(" ")}`);

  // ---- data, ground truth, the single-index baseline ----
  const ds = loadFashionMnist();
  const train = head(ds.train, opts.limit);
  const queries = head(ds.test, opts.queries);
  log(`fashion-mnist from ${DATASET_DIR}: ${train.count} train x ${DIM}, ${queries.count} test queries`);
  const gtr = groundTruth(opts.out, train, queries, K, (s) => log(s));
  const check = bruteForceCheck(train, queries, gtr.gt, 3);
  if (check.mismatches > 0) throw new Error(`ground truth disagrees with brute force on ${check.mismatches} of ${check.checked} queries: delete ${gtr.path}`);
  const exactRecall = (q: number, ids: number[]): number => recallOf(train, queries, gtr.gt, q, ids, K);

  const hnsw: HnswParams = { m: 16, efConstruction: 128, efSearch: opts.ef };
  log(`single usearch index in-process (M=${hnsw.m}, ef_construction=${hnsw.efConstruction}, ef=${opts.ef}), built on 1 thread as a storage node does...`);
  const built = build(hnsw, train, 1);
  const usearchBuild: UsearchBuild = built.report;
  const usearchQuiet = await waitForQuiet(opts.quietWait, opts.quietCores);
  const queryF32 = Array.from({ length: queries.count }, (_, q) => rowF32(queries, q));
  const singleIds: number[][] = [];
  const single: QueryCell = runSync(
    { queries: queries.count, warmup: opts.warmup, maxSeconds: opts.cellSeconds },
    (q) => (singleIds[q] = Array.from(built.index.search(queryF32[q]!, K, 1).keys, (key) => Number(key))),
    exactRecall,
  );
  log(
    `  built in ${fmt(usearchBuild.seconds, 1)} s; 1 thread: recall ${fmt(single.recall, 4)}, ${fmt(single.qps)} QPS, p50 ${fmt(single.latency.p50Ms, 3)} ms, p99 ${fmt(single.latency.p99Ms, 3)} ms`,
  );

  // ---- the cluster ----
  const dataDir = join(workDir, "cluster");
  log(`starting the cluster in ${dataDir} (${JSON.stringify(opts.shape)})...`);
  let target: ClusterTarget | undefined;
  const cleanup = (): void => {
    if (!opts.keepData) rmSync(workDir, { recursive: true, force: true });
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      void (target?.stop() ?? Promise.resolve()).finally(() => {
        cleanup();
        process.exit(130);
      });
    });
  }
  const collections: CollectionRun[] = [];
  const cells: Cell[] = [];
  let placements: Placement[] = [];
  try {
    target = await startClusterTarget(dataDir, opts.shape, (s) => log(s));
    const t = target;
    const admin = t.newClient();
    const nameOf = (shards: number): string => `fmnist_${shards}_shards`;

    // Load every collection first, so that every pass measures the same cluster state.
    for (const shards of opts.shards) {
      const name = nameOf(shards);
      const collection = await createCollection(admin, shards, { name, replicationFactor: 1 });
      log(`collection ${JSON.stringify(collection)}`);
      const hn = collection["hnsw"] as { m?: number; efConstruction?: number } | undefined;
      if (hn?.m !== hnsw.m || hn.efConstruction !== hnsw.efConstruction)
        throw new Error(`the collection's HNSW settings ${JSON.stringify(hn)} differ from the baseline's ${JSON.stringify(hnsw)}`);
      const batches = prepareBatches(train, opts.batch, "raw", name);
      const ing = await ingest(t, batches, opts.inflight, 1800, (s) => log(s));
      log(
        `  loaded: ${fmt(ing.ackRecordsPerSec)} records/s acknowledged, all searchable after ${fmt(ing.searchableSeconds, 1)} s (${fmt(ing.searchableRecordsPerSec)} records/s), cluster cpu ${fmt(ing.serverCpuCores, 2)}`,
      );
      collections.push({ shards, collection, ingest: ing });
    }
    // SESSION reads already waited for the last token; this also checks every replica's applied offset.
    placements = await waitApplied(admin, opts.shards.map(nameOf), 300_000);
    for (const p of placements)
      log(
        `placement ${p.collection}: ${p.shards.map((s) => `shard ${s.shard} on ${s.node} (partition ${s.partition}, applied ${s.appliedOffset})`).join(", ")}`,
      );

    const queryVectors = queryF32.map((v) => Array.from(v));
    // Interleaved: in each round, each client count runs against 1, 2 and 4 shards back to
    // back, so that a neighbour's load on the shared machine hits every shard count alike.
    for (let round = 1; round <= opts.rounds; round++) {
      for (const concurrency of opts.clients) {
        for (const shards of opts.shards) {
          log(`round ${round}, ${shards} shard${shards > 1 ? "s" : ""}, ${concurrency} client${concurrency > 1 ? "s" : ""} (EVENTUAL, k=${K}, ef=${opts.ef}):`);
          const ids: number[][] = [];
          const quiet = await waitForQuiet(opts.quietWait, opts.quietCores);
          if (quiet.busyCores >= opts.quietCores)
            log(`    machine still busy (${fmt(quiet.busyCores, 2)} cores) after ${fmt(quiet.waitedSeconds)} s; measuring anyway`);
          const m0 = await t.metricsByProcess();
          const k0 = readCpuTimes();
          const c0 = process.cpuUsage();
          const w0 = performance.now();
          const [cell] = await sweep(t, queryVectors, {
            collection: nameOf(shards),
            efs: [opts.ef],
            concurrencies: [concurrency],
            k: K,
            connections: opts.connections,
            warmup: opts.warmup,
            maxSeconds: opts.cellSeconds,
            // Scoring sees every answer: keep it for the comparison with the single index.
            recall: (q, got) => {
              ids[q] = got;
              return exactRecall(q, got);
            },
            log: (s) => log(s),
          });
          const seconds = (performance.now() - w0) / 1000;
          const busy = busyCores(k0, readCpuTimes());
          const c1 = process.cpuUsage(c0);
          const cpu = cpuByRole(t.cluster, m0, await t.metricsByProcess());
          const cpuCoresByRole = Object.fromEntries(Object.entries(cpu).map(([role, s]) => [role, s / seconds]));
          const clusterCores = Object.values(cpuCoresByRole).reduce((a, b) => a + b, 0);
          const otherCpuCores = busy - clusterCores - (c1.user + c1.system) / 1e6 / seconds;
          const clusterCpuMsPerSearch = ((clusterCores * seconds) / (cell!.queries + Math.min(opts.warmup, queries.count))) * 1000;
          cells.push({ ...cell!, round, shards, overlapWithSingleIndex: overlap(ids, singleIds), cpuCoresByRole, otherCpuCores, clusterCpuMsPerSearch, quiet });
        }
      }
    }
    if (t.unexpectedExits.length > 0) throw new Error(`processes exited during the run: ${t.unexpectedExits.map((e) => e.name).join(", ")}`);
  } catch (e) {
    if (target) log(`the cluster's log tails:\n${target.outputTail()}`);
    throw e;
  } finally {
    await target?.stop();
    cleanup();
  }
  machine.loadAvgEnd = loadavg().map((x) => Math.round(x * 100) / 100);

  // ---- report ----
  const out: string[] = [""];
  out.push(
    `Cluster search: Fashion-MNIST ${train.count} x ${DIM} (L2), ${queries.count} queries, k=${K}, ef=${opts.ef}, EVENTUAL; ` +
      `${opts.shape.storageNodes} storage nodes, ${opts.shape.queryProcessors} query processors, ${opts.shape.gateways} gateways, ${opts.shape.partitions} partitions, ` +
      `replication factor 1; ${machine.nproc} cpus, node ${machine.node}; load ${machine.loadAvgStart.slice(0, 1).join("")} -> ${machine.loadAvgEnd.slice(0, 1).join("")}`,
  );
  out.push("");
  out.push("Load (each collection in turn; searchable = first Upsert to a SESSION search with the last token answering):");
  out.push(
    table(
      ["collection", "acked/s", "searchable/s", "total s", "upsert p50/p99 ms", "cluster cpu"],
      collections.map((c) => [
        `${c.shards} shard(s)`,
        fmt(c.ingest.ackRecordsPerSec),
        fmt(c.ingest.searchableRecordsPerSec),
        fmt(c.ingest.searchableSeconds, 1),
        `${fmt(c.ingest.upsertLatency.p50Ms)} / ${fmt(c.ingest.upsertLatency.p99Ms)}`,
        fmt(c.ingest.serverCpuCores, 2),
      ]),
    ),
  );
  out.push("");
  out.push(
    "Search (QPS and client-side p50/p99; recall@10 vs exact; overlap = share of the single usearch index's top 10 in the merged top 10; " +
      "cpu in cores over the pass; other cpu = machine busy minus the cluster and the client; cluster cpu ms/search = CPU of all cluster processes per search, for usearch its mean time per search):",
  );
  const roleCols = CPU_ROLES.filter((r) => r !== "meta" && r !== "etcd");
  const summaries = summarize(cells, opts.shards, opts.clients);
  const many = opts.rounds > 1;
  out.push(
    table(
      [
        "system",
        "clients",
        many ? `QPS (median of ${opts.rounds}, min-max)` : "QPS",
        "p50 ms",
        "p99 ms",
        "recall",
        "overlap",
        "shard search ms",
        "fan-out ms",
        ...roleCols.map((r) => `${r} cpu`),
        "client cpu",
        "other cpu",
        "cluster cpu ms/search",
      ],
      [
        [
          "usearch single index, in-process",
          "1",
          fmt(single.qps),
          fmt(single.latency.p50Ms, 3),
          fmt(single.latency.p99Ms, 3),
          fmt(single.recall, 4),
          "1.0000",
          "-",
          "-",
          ...roleCols.map(() => "-"),
          fmt(single.clientCpuCores, 2),
          fmt(single.machineBusyCores - single.clientCpuCores, 2),
          fmt(single.latency.meanMs, 2),
        ],
        ...summaries.map((c) => [
          `vecraft ${c.shards} shard(s)`,
          String(c.clients),
          many ? `${fmt(c.qps)} (${fmt(c.qpsMin)}-${fmt(c.qpsMax)})` : fmt(c.qps),
          fmt(c.p50Ms, 2),
          fmt(c.p99Ms, 2),
          fmt(c.recall, 4),
          fmt(c.overlap, 4),
          fmt(c.shardSearchMs, 3),
          fmt(c.fanoutMs, 3),
          ...roleCols.map((r) => fmt(c.cpuCoresByRole[r] ?? Number.NaN, 2)),
          fmt(c.clientCpuCores, 2),
          fmt(c.otherCpuCores, 2),
          fmt(c.clusterCpuMsPerSearch, 1),
        ]),
      ],
    ),
  );
  if (many) out.push(`(medians over ${opts.rounds} interleaved rounds; every round's numbers are in the JSON)`);
  out.push("");
  const base = opts.shards[0]!;
  out.push(
    `Ratios to ${base} shard(s) at the same client count, in the same round (median over the rounds; QPS: higher is better; latency: lower is better), ` +
      "and the median QPS / usearch in-process QPS:",
  );
  // Within a round the passes ran back to back, so a round's ratio cancels most of the
  // shared machine's drift; the median of those is steadier than a ratio of medians.
  const ratios = summaries.flatMap((c) => {
    const pairs = cells.flatMap((x) => {
      const b =
        x.shards === c.shards && x.concurrency === c.clients
          ? cells.find((y) => y.round === x.round && y.shards === base && y.concurrency === c.clients)
          : undefined;
      return b ? [[x, b] as const] : [];
    });
    if (pairs.length === 0) return [];
    const m = (f: (x: Cell) => number): number => median(pairs.map(([x, b]) => f(x) / f(b)));
    return [
      {
        shards: c.shards,
        clients: c.clients,
        qps: m((x) => x.qps),
        p50: m((x) => x.latency.p50Ms),
        p99: m((x) => x.latency.p99Ms),
        qpsVsUsearch: c.qps / single.qps,
      },
    ];
  });
  out.push(
    table(
      ["collection", "clients", "QPS", "p50", "p99", "QPS vs usearch 1 thread"],
      ratios.map((r) => [
        `${r.shards} shard(s)`,
        String(r.clients),
        `${fmt(r.qps, 2)}x`,
        `${fmt(r.p50, 2)}x`,
        `${fmt(r.p99, 2)}x`,
        `${fmt(r.qpsVsUsearch, 3)}x`,
      ]),
    ),
  );
  process.stdout.write(out.join("\n") + "\n");

  const resultPath = join(opts.out, `cluster-${runStamp}.json`);
  writeFileSync(
    resultPath,
    JSON.stringify(
      {
        benchmark: "cluster",
        startedAt,
        finishedAt: new Date().toISOString(),
        command: `pnpm -s exec tsx bench/cluster/run.ts ${process.argv.slice(2).join(" ")}`.trim(),
        options: opts,
        machine,
        dataset: {
          name: "fashion-mnist (Debian dataset-fashion-mnist)",
          train: train.count,
          queries: queries.count,
          dimension: DIM,
          groundTruth: relative(repoRoot, gtr.path),
          bruteForceCheck: check,
        },
        hnsw,
        usearch: { build: usearchBuild, search: single, quiet: usearchQuiet },
        collections,
        placements,
        summaries,
        ratios,
        cells,
        report: out.join("\n"),
      },
      null,
      2,
    ),
  );
  log(`\nresults: ${relative(repoRoot, resultPath)}`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`cluster benchmark failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
