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
import { DEFAULT_HEALTH, NodeHealth, isConnectionFailure, type CatalogFollower, type HealthOptions } from "@vecraft/meta-client";
import type { QueryMetrics } from "./metrics.js";

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
  readonly metrics?: QueryMetrics;
  /** Cool-downs of failed replicas (default: 1 s doubling up to 30 s). */
  readonly health?: HealthOptions;
}

/** A storage client per node address; `forget` drops one whose connection broke. */
export interface StorageClientFor {
  (address: string): Client<typeof StorageService>;
  forget?(address: string): void;
}

/**
 * Codes after which another replica may do better: it may be up, hosting the shard, or
 * further along. A request in flight on an HTTP/2 connection whose peer died fails with
 * Aborted (ECONNRESET), Internal or Unknown (the stream or session torn down), Canceled
 * (RST_STREAM CANCEL) or Unavailable (refused, or REFUSED_STREAM); ResourceExhausted is
 * one session refusing streams (ENHANCE_YOUR_CALM). A cancellation of our own request is
 * told apart by its signal, and never retried.
 */
const TRY_ANOTHER: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.NotFound,
  Code.Internal,
  Code.Unknown,
  Code.Aborted,
  Code.Canceled,
  Code.ResourceExhausted,
]);

/** Failures that say nothing about the node's health (it answered, but lacks the shard). */
const NOT_A_NODE_FAILURE: ReadonlySet<Code> = new Set([Code.NotFound]);

/** What one shard read may spend, over all the replicas it tries. */
export interface ReplicaBudget {
  readonly signal: AbortSignal;
  /** How long replicas may wait for the read target, all attempts together. */
  readonly waitMs: number;
  /** The caller's remaining deadline when the read started; undefined: none. */
  readonly timeoutMs: number | undefined;
}

/** One attempt on one replica: its share of the budget. */
export interface Attempt {
  /** The read target wait to ask this replica for. */
  readonly waitMs: number;
  readonly call: { signal: AbortSignal; timeoutMs?: number };
}

/**
 * A lagging replica answers DEADLINE_EXCEEDED only after waiting for its read target;
 * while another replica is left to try, an attempt gets this share of what is left, so
 * a retry still has time. The last candidate gets everything left.
 */
const ATTEMPT_SHARE = 0.5;
/** Extra deadline over the attempt's wait, so the replica can answer DEADLINE_EXCEEDED itself. */
const WAIT_MARGIN_MS = 100;

export class QueryEngine {
  private rr = 0;
  readonly #health: NodeHealth;

  constructor(
    private readonly catalog: CatalogFollower,
    private readonly journal: Client<typeof JournalService>,
    private readonly storageFor: StorageClientFor,
    private readonly logger: Logger,
    private readonly opts: QueryOptions,
  ) {
    this.#health = new NodeHealth(opts.health ?? DEFAULT_HEALTH);
    catalog.onChange((c) => this.#health.retain(new Set(c.nodes.map((n) => n.id))));
  }
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
   * way another might not (see NodeHealth in @vecraft/meta-client for the order). Every attempt but the last
   * gets a share of the wait budget and deadline, so one lagging or hung replica does not
   * use up the read.
   */
  async onReplica<T>(
    placement: ShardPlacement,
    budget: ReplicaBudget,
    fn: (client: Client<typeof StorageService>, attempt: Attempt, node: string) => Promise<T>,
  ): Promise<T> {
    const m = this.opts.metrics;
    const candidates = this.#health.order(placement.replicas, (id) => this.catalog.node(id), this.rr++);
    if (candidates.length === 0) {
      const why = placement.replicas.length === 0 ? "has no replica" : `has no registered replica (placed on ${placement.replicas.join(", ")})`;
      throw new UnavailableError(`shard ${placement.shard} ${why}`, { details: { shard: placement.shard } });
    }
    const started = performance.now();
    const failures: { node: string; error: ConnectError }[] = [];
    for (let i = 0; i < candidates.length; i++) {
      const { node, address } = candidates[i] as { node: string; address: string };
      const attempt = shareOf(budget, performance.now() - started, i < candidates.length - 1);
      m?.replicaAttempts.inc();
      try {
        const out = await fn(this.storageFor(address), attempt, node);
        this.#health.succeeded(node);
        m?.replicasTried.observe(i + 1);
        return out;
      } catch (e) {
        const error = toConnectError(e);
        // Our own caller gave up (cancelled, or its deadline passed): no other replica helps.
        if (budget.signal.aborted) throw error;
        if (!TRY_ANOTHER.has(error.code)) throw error;
        failures.push({ node, error });
        const reason = reasonOf(error);
        m?.replicaFailures.inc({ node, reason });
        if (!NOT_A_NODE_FAILURE.has(error.code)) this.#health.failed(node);
        // A broken connection is not reused: the next call to this node opens a new one.
        if (isConnectionFailure(error)) this.storageFor.forget?.(address);
        if (i < candidates.length - 1) m?.replicaRetries.inc({ reason });
        this.logger.debug("replica failed; trying another", { shard: placement.shard, node, code: error.code, message: error.rawMessage });
      }
    }
    m?.replicasTried.observe(candidates.length);
    // A read target no replica reached in time is the answer the caller can act on (wait,
    // or read less fresh); otherwise the last failure's code.
    const lagging = failures.find((f) => f.error.code === Code.DeadlineExceeded);
    const code = lagging?.error.code ?? failures.at(-1)?.error.code ?? Code.Unavailable;
    const detail = failures.map((f) => `${f.node}: ${f.error.rawMessage}`).join("; ");
    throw new ConnectError(`no replica could answer (${detail})`, code);
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


/** The share of `budget` for an attempt `elapsedMs` into the read; all of what is left for the last. */
export function shareOf(budget: ReplicaBudget, elapsedMs: number, more: boolean): Attempt {
  const share = more ? ATTEMPT_SHARE : 1;
  const elapsed = Math.floor(elapsedMs);
  const waitLeft = Math.max(1, budget.waitMs - elapsed);
  const waitMs = Math.max(1, Math.floor(waitLeft * share));
  if (budget.timeoutMs === undefined) return { waitMs, call: { signal: budget.signal } };
  const left = Math.max(1, Math.floor(budget.timeoutMs - elapsed));
  const timeoutMs = more ? Math.min(left, Math.max(Math.floor(left * share), waitMs + WAIT_MARGIN_MS)) : left;
  return { waitMs, call: { signal: budget.signal, timeoutMs } };
}

/** A bounded metric label for a failure. */
function reasonOf(e: ConnectError): string {
  if (isConnectionFailure(e)) return "connection";
  return Code[e.code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}
