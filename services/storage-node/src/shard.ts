// A shard replica: its SQLite rows, its HNSW index, and the read paths over them.
//
// Search strategy with a filter: count the matching rows in SQLite (bounded); when there
// are few (<= exactThreshold) score them all exactly; otherwise search HNSW with
// oversampling, keep the candidates that match, and widen until k hits or the whole index
// was considered (then fall back to exact scoring). Final scores are always computed from
// the stored vectors, so every path ranks the same way; ties break by id.
import type { StoredRow, ShardStore, ShardWrite } from "./shard-store.js";
import type { ShardSpec } from "./spec.js";
import { better, type IndexParams, type Metric, type VectorIndex } from "./vector-index.js";

export interface CompiledWhere {
  readonly sql: string;
  readonly params: readonly (string | number | bigint)[];
}

export interface Hit {
  readonly id: string;
  readonly score: number;
  readonly row: StoredRow;
}

export interface SearchOptions {
  readonly k: number;
  readonly ef: number;
  readonly filter?: CompiledWhere | undefined;
}

export interface ShardLimits {
  /** Filters matching at most this many rows are scored exactly. */
  readonly exactThreshold: number;
}

/** The public score of `v` against `q` under `metric`, computed in float64. */
export function exactScore(metric: Metric, q: Float32Array, v: Float32Array): number {
  let dot = 0;
  let qq = 0;
  let vv = 0;
  let l2 = 0;
  for (let i = 0; i < q.length; i++) {
    const a = q[i] as number;
    const b = v[i] as number;
    dot += a * b;
    qq += a * a;
    vv += b * b;
    const d = a - b;
    l2 += d * d;
  }
  if (metric === "ip") return dot;
  if (metric === "l2") return Math.sqrt(l2);
  return qq === 0 || vv === 0 ? 0 : dot / Math.sqrt(qq * vv);
}

function rank(metric: Metric, hits: Hit[]): Hit[] {
  return hits.sort((a, b) => (a.score === b.score ? (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : better(metric, a.score, b.score) ? -1 : 1));
}

export class Shard {
  /** Set once the replica left the served map (moved away, dropped, lost to another incarnation). */
  retired = false;
  /** Users that must finish before it is closed (snapshots being served). */
  private users = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    readonly collection: string,
    readonly shard: number,
    readonly partition: number,
    /** The catalog uid of the collection incarnation ("" for replicas registered before uids were kept). */
    readonly uid: string,
    readonly spec: ShardSpec,
    readonly store: ShardStore,
    readonly index: VectorIndex,
    private readonly limits: ShardLimits,
  ) {}

  get params(): IndexParams {
    return this.spec.params;
  }

  get key(): string {
    return shardKey(this.collection, this.shard);
  }

  /** Applies entries to SQLite (one transaction) and then to the index (in slices). */
  async apply(writes: readonly ShardWrite[], through: { offset: number; ts: bigint }): Promise<void> {
    const ops = this.store.apply(writes, through);
    await this.index.apply(ops);
  }

  search(query: Float32Array, opts: SearchOptions): Hit[] {
    const { k } = opts;
    const ef = Math.max(opts.ef || this.params.efSearch, k);
    if (!opts.filter) {
      // HNSW ranks the candidates; only the best k are read from SQLite and re-scored.
      const { keys } = this.index.search(query, k, ef);
      return this.scoreRows(query, this.store.getByKeys(keys.slice(0, k)));
    }
    const { sql, params } = opts.filter;
    const matches = this.store.countMatching(sql, params, this.limits.exactThreshold);
    if (matches <= this.limits.exactThreshold) {
      return this.scoreRows(query, this.store.matching(sql, params)).slice(0, k);
    }
    // Broad filter: oversample HNSW and widen.
    const size = this.index.size;
    let want = Math.max(ef, k * 4);
    for (;;) {
      const { keys } = this.index.search(query, want, want);
      const keep = this.store.keysMatching(keys, sql, params);
      const kept = keys.filter((key) => keep.has(key));
      if (kept.length >= k) return this.scoreRows(query, this.store.getByKeys(kept.slice(0, k)));
      if (want >= size) break;
      want = Math.min(size, want * 4);
    }
    return this.scoreRows(query, this.store.matching(sql, params)).slice(0, k);
  }

  private scoreRows(query: Float32Array, rows: StoredRow[]): Hit[] {
    const metric = this.params.metric;
    return rank(
      metric,
      rows.map((row) => ({ id: row.id, score: exactScore(metric, query, row.vector), row })),
    );
  }

  get(ids: readonly string[]): StoredRow[] {
    return this.store.getByIds(ids);
  }

  page(filter: CompiledWhere | undefined, afterId: string, limit: number): StoredRow[] {
    return this.store.page(filter?.sql ?? "1", filter?.params ?? [], afterId, limit);
  }

  close(): void {
    this.store.close();
  }

  /** Marks a use that outlives one synchronous step (a snapshot); pair with release(). */
  acquire(): void {
    this.users++;
  }

  release(): void {
    if (--this.users > 0) return;
    for (const fn of this.idleWaiters.splice(0)) fn();
  }

  /** Resolves once no acquired use is left. */
  idle(): Promise<void> {
    if (this.users === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

export function shardKey(collection: string, shard: number): string {
  return `${collection}/${shard}`;
}
