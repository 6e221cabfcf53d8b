// The query processor's domain: turn a consistency level into a read target, fan a read
// out to one replica of every shard (trying another replica when one fails), and merge.
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { InvalidArgumentError, UnavailableError, toConnectError, type Logger } from "@vecraft/common";
import { encode, parseTimestamp, type PhysicalClock } from "@vecraft/hlc";
import { shardOf } from "@vecraft/model";
import {
  Consistency,
  Metric,
  type CatalogCollection,
  type JournalService,
  type ReadConsistency,
  type ReadTarget,
  type ShardHit,
  type ShardPlacement,
  type StorageService,
  type StoredRecord,
} from "@vecraft/rpc";
import type { CatalogCache } from "./catalog-cache.js";

export interface ResolvedTarget {
  readonly level: Consistency;
  /** 0 for EVENTUAL until the shards answered; then the oldest applied ts seen. */
  readonly readTs: bigint;
  /** The read target for a shard of `partition`. */
  target(partition: number): { minOffset: bigint; minTs: bigint };
}

export interface QueryOptions {
  readonly defaultStalenessMs: number;
  readonly defaultWaitMs: number;
  readonly clock: PhysicalClock;
}

export type StorageClientFor = (address: string) => Client<typeof StorageService>;

/** Codes after which another replica may do better (it may be up, or further along). */
const TRY_ANOTHER: ReadonlySet<Code> = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.NotFound, Code.Internal, Code.Unknown, Code.Aborted]);

export class QueryEngine {
  private rr = 0;

  constructor(
    private readonly catalog: CatalogCache,
    private readonly journal: Client<typeof JournalService>,
    private readonly storageFor: StorageClientFor,
    private readonly logger: Logger,
    private readonly opts: QueryOptions,
  ) {}

  collection(name: string, signal: AbortSignal): Promise<CatalogCollection> {
    return this.catalog.collection(name, signal);
  }

  /** Resolves the consistency level for the partitions a read touches. */
  async resolve(consistency: ReadConsistency | undefined, partitions: readonly number[], signal: AbortSignal, timeoutMs: number): Promise<ResolvedTarget> {
    const level = consistency?.level ?? Consistency.UNSPECIFIED;
    switch (level) {
      case Consistency.EVENTUAL:
        return { level, readTs: 0n, target: () => ({ minOffset: 0n, minTs: 0n }) };
      case Consistency.SESSION: {
        const token = consistency?.sessionToken ?? "";
        if (!token) return { level, readTs: 0n, target: () => ({ minOffset: 0n, minTs: 0n }) };
        let ts: bigint;
        try {
          ts = parseTimestamp(token);
        } catch (e) {
          throw new InvalidArgumentError(`consistency.session_token: not a token this service issued (${e instanceof Error ? e.message : String(e)})`);
        }
        return { level, readTs: ts, target: () => ({ minOffset: 0n, minTs: ts }) };
      }
      case Consistency.STRONG: {
        const res = await this.journal.barrier({ partitions: [...new Set(partitions)] }, { signal, timeoutMs });
        const byPartition = new Map(res.positions.map((p) => [p.partition, p]));
        const readTs = res.positions.reduce((m, p) => (p.ts > m ? p.ts : m), 0n);
        return {
          level,
          readTs,
          target: (p) => ({ minOffset: byPartition.get(p)?.offset ?? 0n, minTs: 0n }),
        };
      }
      default: {
        const staleness = consistency?.stalenessMs || this.opts.defaultStalenessMs;
        const ts = encode(Math.max(0, Math.floor(this.opts.clock.now()) - staleness), 0);
        return { level: Consistency.BOUNDED, readTs: ts, target: () => ({ minOffset: 0n, minTs: ts }) };
      }
    }
  }

  /**
   * Calls `fn` on one replica of the shard, trying the next replica when one fails in a
   * way another might not. Replicas are rotated so load spreads across them.
   */
  async onReplica<T>(placement: ShardPlacement, fn: (client: Client<typeof StorageService>, node: string) => Promise<T>): Promise<T> {
    const replicas = placement.replicas;
    if (replicas.length === 0) throw new UnavailableError(`shard ${placement.shard} has no replica`);
    const start = this.rr++ % replicas.length;
    let last: ConnectError | undefined;
    for (let i = 0; i < replicas.length; i++) {
      const node = replicas[(start + i) % replicas.length] as string;
      const address = this.catalog.nodeAddress(node);
      if (!address) {
        last = new ConnectError(`storage node ${node} is not registered`, Code.Unavailable);
        continue;
      }
      try {
        return await fn(this.storageFor(address), node);
      } catch (e) {
        last = toConnectError(e);
        if (!TRY_ANOTHER.has(last.code)) throw last;
        this.logger.debug("replica failed; trying another", { shard: placement.shard, node, code: last.code, message: last.rawMessage });
      }
    }
    throw new ConnectError(`no replica could answer: ${last?.rawMessage ?? "unknown error"}`, last?.code ?? Code.Unavailable);
  }

  waitMs(timeoutMs: number | undefined): number {
    return Math.max(1, Math.min(this.opts.defaultWaitMs, timeoutMs ?? this.opts.defaultWaitMs));
  }
}

/** Ranks hits best first (by score for the metric, then id). */
export function mergeHits(metric: Metric, lists: readonly ShardHit[][], k: number): ShardHit[] {
  const asc = metric === Metric.L2;
  return lists
    .flat()
    .sort((a, b) => {
      if (a.score !== b.score) return asc ? a.score - b.score : b.score - a.score;
      return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
    })
    .slice(0, k);
}

/** Groups ids by the shard that owns them. */
export function idsByShard(ids: readonly string[], shards: number): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const id of ids) {
    const s = shardOf(id, shards);
    const list = out.get(s) ?? [];
    list.push(id);
    out.set(s, list);
  }
  return out;
}

/** Merges per-shard pages (each in id order) into the first `limit` ids overall. */
export function mergePages(pages: readonly StoredRecord[][], limit: number): { records: StoredRecord[]; hasMore: boolean } {
  const all = pages.flat().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { records: all.slice(0, limit), hasMore: all.length > limit || pages.some((p) => p.length >= limit) };
}

export function readTarget(t: { minOffset: bigint; minTs: bigint }, waitMs: number): ReadTarget {
  return { $typeName: "vecraft.v1.ReadTarget", minOffset: t.minOffset, minTs: t.minTs, waitMs };
}

