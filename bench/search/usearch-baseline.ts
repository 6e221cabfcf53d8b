// Raw usearch in-process: the floor for this stack. Same HNSW parameters as a Vecraft
// collection's defaults (M=16, ef_construction=128, f32, L2 squared).
//
// Build: the train vectors are added in one batched `add` call with an explicit thread
// count (1 = what a Vecraft storage node does: it adds on its JS thread), and timed.
//
// Search: one query at a time on one thread, for each ef, two ways:
//   - "index per ef": usearch's JS binding fixes expansion_search at construction, so the
//     built index is saved once and `view`ed (mmap) by one Index per ef, constructed with
//     expansion_search = ef, searched with k = 10. This is HNSW's real ef.
//   - "k = max(k, ef)": one index with expansion_search = 64 (Vecraft's default), searched
//     with k = max(10, ef), keeping the best 10. This is what a Vecraft shard does for a
//     per-request ef, so it is the floor to compare Vecraft with.
import { join } from "node:path";
import { Index, MetricKind, ScalarKind } from "usearch";
import { allF32, DIM, rowF32, type Split } from "./dataset.js";
import { runSync, type QueryCell } from "./sweep.js";
import { busyCores, readCpuTimes } from "../journal/machine.js";

export interface HnswParams {
  readonly m: number;
  readonly efConstruction: number;
  readonly efSearch: number;
}

export interface UsearchBuild {
  readonly threads: number;
  readonly vectors: number;
  readonly seconds: number;
  readonly addsPerSec: number;
  /** CPU of this process during the build (cores) and busy cores of the whole machine. */
  readonly cpuCores: number;
  readonly machineBusyCores: number;
}

export interface UsearchSweepRow {
  readonly ef: number;
  readonly mode: "index-per-ef" | "k-max-ef";
  readonly cell: QueryCell;
}

export interface UsearchReport {
  readonly version: string;
  readonly params: HnswParams;
  readonly builds: UsearchBuild[];
  readonly sweep: UsearchSweepRow[];
}

function newIndex(p: HnswParams, efSearch: number): Index {
  return new Index({
    dimensions: DIM,
    metric: MetricKind.L2sq,
    quantization: ScalarKind.F32,
    connectivity: p.m,
    expansion_add: p.efConstruction,
    expansion_search: efSearch,
    multi: false,
  });
}

function keysOf(n: number): BigUint64Array {
  const keys = new BigUint64Array(n);
  for (let i = 0; i < n; i++) keys[i] = BigInt(i);
  return keys;
}

export function build(p: HnswParams, train: Split, threads: number): { index: Index; report: UsearchBuild } {
  const data = allF32(train);
  const keys = keysOf(train.count);
  const index = newIndex(p, p.efSearch);
  const c0 = process.cpuUsage();
  const m0 = readCpuTimes();
  const t0 = performance.now();
  index.add(keys, data, threads);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  const machineBusyCores = busyCores(m0, readCpuTimes());
  if (index.size() !== train.count) throw new Error(`usearch holds ${index.size()} vectors after adding ${train.count}`);
  return { index, report: { threads, vectors: train.count, seconds, addsPerSec: train.count / seconds, cpuCores: (cpu.user + cpu.system) / 1e6 / seconds, machineBusyCores } };
}

export function runUsearch(opts: {
  readonly params: HnswParams;
  readonly train: Split;
  readonly queries: Split;
  readonly efs: readonly number[];
  readonly k: number;
  readonly buildThreads: readonly number[];
  readonly workDir: string;
  readonly warmup: number;
  readonly maxSeconds: number;
  readonly recall: (q: number, ids: number[]) => number;
  readonly log: (s: string) => void;
  readonly version: string;
}): UsearchReport {
  const builds: UsearchBuild[] = [];
  let kept: Index | undefined;
  for (const threads of opts.buildThreads) {
    const { index, report } = build(opts.params, opts.train, threads);
    builds.push(report);
    opts.log(
      `  usearch build, ${threads} thread${threads > 1 ? "s" : ""}: ${report.vectors} vectors in ${report.seconds.toFixed(1)} s = ${Math.round(report.addsPerSec)} adds/s ` +
        `(cpu ${report.cpuCores.toFixed(2)} cores, machine busy ${report.machineBusyCores.toFixed(2)})`,
    );
    kept ??= index;
  }
  if (!kept) throw new Error("no usearch build");
  const path = join(opts.workDir, "usearch.index");
  kept.save(path);
  const queryVectors = Array.from({ length: opts.queries.count }, (_, q) => rowF32(opts.queries, q));
  const idsOf = (keys: BigUint64Array, k: number): number[] => Array.from(keys.subarray(0, k), (key) => Number(key));
  const sweep: UsearchSweepRow[] = [];
  const base = newIndex(opts.params, opts.params.efSearch);
  base.view(path);
  for (const ef of opts.efs) {
    const perEf = newIndex(opts.params, ef);
    perEf.view(path);
    const a = runSync(
      { queries: opts.queries.count, warmup: opts.warmup, maxSeconds: opts.maxSeconds },
      (q) => idsOf(perEf.search(queryVectors[q]!, opts.k, 1).keys, opts.k),
      opts.recall,
    );
    sweep.push({ ef, mode: "index-per-ef", cell: a });
    const want = Math.max(opts.k, ef);
    const b = runSync(
      { queries: opts.queries.count, warmup: opts.warmup, maxSeconds: opts.maxSeconds },
      (q) => idsOf(base.search(queryVectors[q]!, want, 1).keys, opts.k),
      opts.recall,
    );
    sweep.push({ ef, mode: "k-max-ef", cell: b });
    opts.log(
      `  usearch ef ${ef}: index per ef recall ${a.recall.toFixed(4)} ${Math.round(a.qps)} QPS; k=max(k,ef) recall ${b.recall.toFixed(4)} ${Math.round(b.qps)} QPS`,
    );
  }
  return { version: opts.version, params: opts.params, builds, sweep };
}
