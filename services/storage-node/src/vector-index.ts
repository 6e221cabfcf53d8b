// The HNSW index of one shard (usearch). It is derived state: a checkpoint file records
// the partition offset it covers, and on open the rows written after that offset are
// replayed from SQLite; a missing or unreadable checkpoint means a rebuild from SQLite,
// never data loss. usearch calls block the event loop, so bulk work runs in slices.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { Index, MetricKind, ScalarKind } from "usearch";
import type { IndexOp, ShardStore } from "./shard-store.js";

export type Metric = "cosine" | "l2" | "ip";

export interface IndexParams {
  readonly dimension: number;
  readonly metric: Metric;
  readonly m: number;
  readonly efConstruction: number;
  readonly efSearch: number;
}

/** Vectors added per native call: about 10-20 ms of work at 1.7-3k adds/s, so searches stay responsive. */
export const ADD_SLICE = 32;
const REPLAY_PAGE = 1024;

interface CheckpointMeta {
  readonly version: 1;
  readonly offset: number;
  readonly size: number;
  readonly dimension: number;
  readonly metric: Metric;
}

const METRIC_KIND: Record<Metric, MetricKind> = { cosine: MetricKind.Cos, l2: MetricKind.L2sq, ip: MetricKind.IP };

/** True when score `a` ranks before score `b`. */
export function better(metric: Metric, a: number, b: number): boolean {
  return metric === "l2" ? a < b : a > b;
}

export class VectorIndex {
  private index: Index;
  /** The partition offset the last checkpoint covers. */
  checkpointOffset = 0;

  constructor(readonly params: IndexParams) {
    this.index = VectorIndex.create(params);
  }

  private static create(p: IndexParams): Index {
    return new Index({
      dimensions: p.dimension,
      metric: METRIC_KIND[p.metric],
      quantization: ScalarKind.F32,
      connectivity: p.m,
      expansion_add: p.efConstruction,
      expansion_search: p.efSearch,
      multi: false,
    });
  }

  get size(): number {
    return this.index.size();
  }

  /** Applies index operations in slices, yielding to the event loop between them. */
  async apply(ops: readonly IndexOp[]): Promise<void> {
    // Adds go to usearch in batches (one native call per slice, not per vector), in op
    // order; a remove ends the current batch so that the order of effects is kept.
    const dim = this.params.dimension;
    let keys: bigint[] = [];
    let vectors: Float32Array[] = [];
    const flush = async (): Promise<void> => {
      if (keys.length === 0) return;
      const flat = new Float32Array(keys.length * dim);
      vectors.forEach((v, i) => flat.set(v, i * dim));
      // One thread: insertion order then decides the graph, so two replicas that applied
      // the same entries answer alike (DESIGN invariant 4).
      this.index.add(BigUint64Array.from(keys), flat, 1);
      keys = [];
      vectors = [];
      await yieldToLoop();
    };
    const inBatch = new Set<bigint>();
    for (const op of ops) {
      if (op.kind === "remove") {
        await flush();
        inBatch.clear();
        this.index.remove(op.key);
        continue;
      }
      // usearch keeps one vector per key (multi: false): replace by remove + add.
      if (inBatch.has(op.key)) {
        await flush();
        inBatch.clear();
      }
      if (this.index.contains(op.key)) this.index.remove(op.key);
      keys.push(op.key);
      vectors.push(op.vector);
      inBatch.add(op.key);
      if (keys.length >= ADD_SLICE) {
        await flush();
        inBatch.clear();
      }
    }
    await flush();
  }

  /**
   * The `k` nearest keys. usearch's JS binding cannot change the search expansion per
   * query, and it explores max(expansion_search, k) candidates, so a larger `ef` is
   * honoured by asking for ef results and keeping the best k.
   */
  search(query: Float32Array, k: number, ef: number): { keys: bigint[]; distances: number[] } {
    const size = this.index.size();
    if (size === 0 || k <= 0) return { keys: [], distances: [] };
    const want = Math.min(size, Math.max(k, ef));
    const m = this.index.search(query, want, 0);
    const keys: bigint[] = [];
    const distances: number[] = [];
    for (let i = 0; i < m.keys.length && keys.length < want; i++) {
      keys.push(m.keys[i] as bigint);
      distances.push(m.distances[i] as number);
    }
    return { keys, distances };
  }

  /**
   * Loads the checkpoint at `path` if it is usable, then replays the rows the store
   * changed after it; otherwise rebuilds from the store. Either way the index ends up
   * covering the store's applied offset. `signal` stops a long replay (shutdown, a
   * cancelled bootstrap) between pages.
   */
  async restore(path: string, store: ShardStore, onProgress?: (done: number) => void, signal?: AbortSignal): Promise<"checkpoint" | "rebuilt"> {
    const meta = readCheckpointMeta(path);
    let from = 0;
    let how: "checkpoint" | "rebuilt" = "rebuilt";
    if (meta && meta.dimension === this.params.dimension && meta.metric === this.params.metric && meta.offset <= store.appliedOffset) {
      try {
        const loaded = VectorIndex.create(this.params);
        loaded.load(path);
        if (loaded.size() === meta.size) {
          this.index = loaded;
          from = meta.offset;
          how = "checkpoint";
        }
      } catch {
        // An unreadable checkpoint is only a slower start: rebuild from SQLite below.
        this.index = VectorIndex.create(this.params);
      }
    }
    if (how === "rebuilt") this.index = VectorIndex.create(this.params);
    let afterKey = 0n;
    let done = 0;
    for (;;) {
      signal?.throwIfAborted();
      const rows = store.changedSince(from, afterKey, REPLAY_PAGE);
      if (rows.length === 0) break;
      await this.apply(rows.map((r): IndexOp => (r.deleted ? { kind: "remove", key: r.key } : { kind: "add", key: r.key, vector: r.vector })));
      afterKey = (rows[rows.length - 1] as { key: bigint }).key;
      done += rows.length;
      onProgress?.(done);
    }
    this.checkpointOffset = how === "checkpoint" ? from : 0;
    return how;
  }

  /**
   * Saves the index with the offset it covers: temp file, then rename, then the
   * metadata, so a crash leaves either the old or the new checkpoint usable.
   */
  checkpoint(path: string, offset: number): void {
    const tmp = `${path}.tmp`;
    this.index.save(tmp);
    renameSync(tmp, path);
    const meta: CheckpointMeta = { version: 1, offset, size: this.index.size(), dimension: this.params.dimension, metric: this.params.metric };
    writeFileSync(`${path}.json.tmp`, JSON.stringify(meta));
    renameSync(`${path}.json.tmp`, `${path}.json`);
    this.checkpointOffset = offset;
  }

  static removeCheckpoint(path: string): void {
    for (const p of [path, `${path}.json`, `${path}.tmp`, `${path}.json.tmp`]) rmSync(p, { force: true });
  }
}

function readCheckpointMeta(path: string): CheckpointMeta | undefined {
  if (!existsSync(path) || !existsSync(`${path}.json`)) return undefined;
  try {
    const meta = JSON.parse(readFileSync(`${path}.json`, "utf8")) as CheckpointMeta;
    return meta.version === 1 && Number.isInteger(meta.offset) ? meta : undefined;
  } catch {
    // Unreadable metadata: treat as no checkpoint (rebuild).
    return undefined;
  }
}
