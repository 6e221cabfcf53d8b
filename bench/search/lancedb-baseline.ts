// Embedded LanceDB (@lancedb/lancedb, in-process, on a local directory): the same train
// vectors written as one Arrow table, an ANN index built the ways its docs describe, and
// its search knobs swept to find the fastest setting with recall@10 >= 0.99.
//
// Indexes (both L2):
//   - IVF_PQ with its defaults (sqrt(n) partitions, dim/16 sub-vectors, 8 bits): the index
//     LanceDB's docs start with. Knobs: nprobes, and refine_factor (re-rank refine x k
//     candidates with the full vectors; PQ alone cannot reach high recall).
//   - IVF_HNSW_SQ with one partition (what its docs recommend for HNSW on a table this
//     size), m = 16 and ef_construction = 128 like Vecraft's defaults. Knobs: ef, refine.
import { rmSync } from "node:fs";
import { join } from "node:path";
import * as arrow from "apache-arrow";
import type * as LanceDb from "@lancedb/lancedb";
import { allF32, DIM, rowF32, type Split } from "./dataset.js";
import { runAsync, type QueryCell } from "./sweep.js";

export type LanceIndexKind = "ivf_pq" | "ivf_hnsw_sq";

export interface LanceSetting {
  readonly index: LanceIndexKind;
  readonly nprobes?: number;
  readonly ef?: number;
  /** 1 = no refine step. */
  readonly refineFactor: number;
}

export interface LanceRow {
  readonly setting: LanceSetting;
  readonly cell: QueryCell;
}

export interface LanceIndexReport {
  readonly index: LanceIndexKind;
  readonly options: Record<string, unknown>;
  readonly buildSeconds: number;
  readonly sweep: LanceRow[];
  /** The fastest (concurrency 1) setting with recall >= the target, also run at higher concurrency. */
  readonly best?: { readonly setting: LanceSetting; readonly cells: QueryCell[] };
}

export interface LanceReport {
  readonly version: string;
  readonly writeSeconds: number;
  readonly rowsPerSec: number;
  readonly indexes: LanceIndexReport[];
}

function settingName(s: LanceSetting): string {
  const knob = s.index === "ivf_pq" ? `nprobes ${s.nprobes}` : `ef ${s.ef}`;
  return `${s.index} ${knob}${s.refineFactor > 1 ? ` refine ${s.refineFactor}` : ""}`;
}

export { settingName as lanceSettingName };

function arrowTable(train: Split): arrow.Table {
  const n = train.count;
  const vectorType = new arrow.FixedSizeList(DIM, new arrow.Field("item", new arrow.Float32(), true));
  const schema = new arrow.Schema([new arrow.Field("id", new arrow.Int32(), false), new arrow.Field("vector", vectorType, false)]);
  const values = arrow.makeData({ type: new arrow.Float32(), length: n * DIM, data: allF32(train) });
  const vectors = arrow.makeData({ type: vectorType, length: n, nullCount: 0, child: values });
  const ids = arrow.makeData({ type: new arrow.Int32(), length: n, data: Int32Array.from({ length: n }, (_, i) => i) });
  const struct = arrow.makeData({ type: new arrow.Struct(schema.fields), length: n, nullCount: 0, children: [ids, vectors] });
  return new arrow.Table(schema, new arrow.RecordBatch(schema, struct));
}

export async function runLanceDb(opts: {
  readonly train: Split;
  readonly queries: Split;
  readonly k: number;
  readonly workDir: string;
  readonly indexes: readonly LanceIndexKind[];
  readonly hnsw: { readonly m: number; readonly efConstruction: number };
  readonly efs: readonly number[];
  readonly nprobes: readonly number[];
  readonly refineFactors: readonly number[];
  readonly recallTarget: number;
  readonly concurrencies: readonly number[];
  readonly warmup: number;
  readonly maxSeconds: number;
  readonly recall: (q: number, ids: number[]) => number;
  readonly log: (s: string) => void;
  readonly version: string;
}): Promise<LanceReport> {
  // Its Rust side logs through env_logger; warnings per query would flood the output.
  process.env.LANCEDB_LOG ??= "error";
  const lancedb: typeof LanceDb = await import("@lancedb/lancedb");
  const dir = join(opts.workDir, "lancedb");
  rmSync(dir, { recursive: true, force: true });
  const db = await lancedb.connect(dir);
  const data = arrowTable(opts.train);
  const t0 = performance.now();
  const table = await db.createTable("fashion_mnist", data);
  const writeSeconds = (performance.now() - t0) / 1000;
  const rows = await table.countRows();
  if (rows !== opts.train.count) throw new Error(`lancedb holds ${rows} rows after writing ${opts.train.count}`);
  opts.log(`  lancedb write: ${rows} rows in ${writeSeconds.toFixed(1)} s`);
  const queryVectors = Array.from({ length: opts.queries.count }, (_, q) => rowF32(opts.queries, q));

  const search = async (s: LanceSetting, q: number): Promise<number[]> => {
    let query = table.vectorSearch(queryVectors[q]!).distanceType("l2").limit(opts.k).select(["id", "_distance"]);
    if (s.nprobes !== undefined) query = query.nprobes(s.nprobes);
    if (s.ef !== undefined) query = query.ef(s.ef);
    if (s.refineFactor > 1) query = query.refineFactor(s.refineFactor);
    const res = await query.toArray();
    return res.map((r: { id: number }) => Number(r.id));
  };
  const measure = (s: LanceSetting, concurrency: number): Promise<QueryCell> =>
    runAsync({ queries: opts.queries.count, concurrency, warmup: opts.warmup, maxSeconds: opts.maxSeconds }, (q) => search(s, q), opts.recall);

  const indexes: LanceIndexReport[] = [];
  for (const kind of opts.indexes) {
    const options: Record<string, unknown> =
      kind === "ivf_pq" ? { distanceType: "l2" } : { distanceType: "l2", numPartitions: 1, m: opts.hnsw.m, efConstruction: opts.hnsw.efConstruction };
    const config = kind === "ivf_pq" ? lancedb.Index.ivfPq({ distanceType: "l2" }) : lancedb.Index.hnswSq({ distanceType: "l2", numPartitions: 1, m: opts.hnsw.m, efConstruction: opts.hnsw.efConstruction });
    const b0 = performance.now();
    await table.createIndex("vector", { config, replace: true });
    const buildSeconds = (performance.now() - b0) / 1000;
    opts.log(`  lancedb ${kind} index: built in ${buildSeconds.toFixed(1)} s (${JSON.stringify(options)})`);
    const sweep: LanceRow[] = [];
    const knobs = kind === "ivf_pq" ? opts.nprobes : opts.efs;
    for (const knob of knobs) {
      for (const refineFactor of opts.refineFactors) {
        // LanceDB asks HNSW for k x refine candidates and wants ef >= that.
        if (kind === "ivf_hnsw_sq" && knob < opts.k * refineFactor) continue;
        const setting: LanceSetting = kind === "ivf_pq" ? { index: kind, nprobes: knob, refineFactor } : { index: kind, ef: Math.max(knob, opts.k), refineFactor };
        const cell = await measure(setting, 1);
        sweep.push({ setting, cell });
        opts.log(`    ${settingName(setting)}: recall ${cell.recall.toFixed(4)}, ${Math.round(cell.qps)} QPS, p50 ${cell.latency.p50Ms.toFixed(2)} ms`);
        // A larger refine factor only costs more once recall is (nearly) perfect.
        if (cell.errors === 0 && cell.recall >= 0.999) break;
      }
    }
    const candidates = sweep.filter((r) => r.cell.recall >= opts.recallTarget && r.cell.errors === 0).sort((a, b) => b.cell.qps - a.cell.qps);
    let best: LanceIndexReport["best"];
    const top = candidates[0];
    if (top) {
      const cells: QueryCell[] = [top.cell];
      for (const c of opts.concurrencies) {
        if (c === 1) continue;
        const cell = await measure(top.setting, c);
        cells.push(cell);
        opts.log(`    best ${settingName(top.setting)} at ${c} clients: recall ${cell.recall.toFixed(4)}, ${Math.round(cell.qps)} QPS, p99 ${cell.latency.p99Ms.toFixed(2)} ms`);
      }
      best = { setting: top.setting, cells };
    } else {
      opts.log(`    no ${kind} setting reached recall ${opts.recallTarget}`);
    }
    indexes.push({ index: kind, options, buildSeconds, sweep, ...(best ? { best } : {}) });
  }
  table.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return { version: opts.version, writeSeconds, rowsPerSec: opts.train.count / writeSeconds, indexes };
}
