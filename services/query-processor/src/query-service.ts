// The QueryService RPCs: resolve the read target once per request, fan out to one
// replica per shard, merge. Partial answers only when the caller allows them.
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { ConnectError } from "@connectrpc/connect";
import { ERROR_DETAIL_HEADER_PREFIX, InvalidArgumentError, toConnectError } from "@vecraft/common";
import { Consistency, type QueryService, type ShardHit, type StoredRecord } from "@vecraft/rpc";
import { idsByShard, mergeHits, mergePages, readTarget, type QueryEngine, type ReplicaBudget } from "./query.js";
import type { QueryMetrics } from "./metrics.js";

/** What each shard read may spend over its replicas: the request's wait and deadline. */
function budgetOf(engine: QueryEngine, ctx: HandlerContext): ReplicaBudget {
  const timeoutMs = ctx.timeoutMs();
  return { signal: ctx.signal, waitMs: engine.waitMs(timeoutMs), timeoutMs };
}

/** Raises the first failure (naming its shard), unless partial results are allowed. */
function settle<T>(results: PromiseSettledResult<T>[], shards: readonly number[], allowPartial: boolean): { values: T[]; missing: number[] } {
  const values: T[] = [];
  const missing: number[] = [];
  results.forEach((r, i) => {
    if (r.status === "fulfilled") values.push(r.value);
    else {
      if (!allowPartial) {
        const ce = toConnectError(r.reason);
        // The `vecraft-shard` detail tells a gateway that the shard (not this processor)
        // failed, so asking another processor would not help.
        const metadata = new Headers(ce.metadata);
        metadata.set(`${ERROR_DETAIL_HEADER_PREFIX}shard`, String(shards[i]));
        throw new ConnectError(`shard ${shards[i]}: ${ce.rawMessage}`, ce.code, metadata);
      }
      missing.push(shards[i] as number);
    }
  });
  return { values, missing };
}

export function createQueryServiceImpl(engine: QueryEngine, metrics: QueryMetrics): ServiceImpl<typeof QueryService> {
  return {
    async search(req, ctx) {
      if (req.k < 1 || req.k > 1000) throw new InvalidArgumentError(`k: must be between 1 and 1000, got ${req.k}`);
      const cc = await engine.collection(req.collection, ctx.signal);
      const spec = cc.collection;
      if (!spec) throw new InvalidArgumentError(`collection ${req.collection} has no spec`);
      if (req.vectorF32.length !== spec.dimension * 4) {
        throw new InvalidArgumentError(`vector: expected ${spec.dimension} dimensions, got ${req.vectorF32.length / 4}`);
      }
      const resolved = await engine.resolve(req.consistency, cc.shards.map((s) => s.partition), ctx.signal, ctx.timeoutMs() ?? 30_000);
      const budget = budgetOf(engine, ctx);
      const stop = metrics.fanoutSeconds.startTimer({ method: "search" });
      const results = await Promise.allSettled(
        cc.shards.map((p) =>
          engine.onReplica(p, budget, (client, attempt) =>
            client.searchShard(
              {
                collection: req.collection,
                // The incarnation: a replica left from a dropped collection of the same
                // name answers NOT_FOUND, and onReplica tries another.
                uid: cc.uid,
                shard: p.shard,
                vectorF32: req.vectorF32,
                k: req.k,
                filterJson: req.filterJson,
                ef: req.ef,
                read: readTarget(resolved.target(p.partition), attempt.waitMs),
                includeVectors: req.includeVectors,
                includeMetadata: req.includeMetadata,
              },
              attempt.call,
            ),
          ),
        ),
      );
      stop();
      metrics.shardsPerSearch.observe(cc.shards.length);
      const { values, missing } = settle(results, cc.shards.map((s) => s.shard), req.allowPartialResults);
      const hits: ShardHit[] = mergeHits(spec.metric, values.map((v) => v.hits), req.k);
      const readTs = resolved.level === Consistency.EVENTUAL ? minApplied(values.map((v) => v.applied?.ts ?? 0n)) : resolved.readTs;
      return { hits, read: { level: resolved.level, readTs, observedTs: maxApplied(values.map((v) => v.applied?.ts ?? 0n)) }, missingShards: missing };
    },

    async get(req, ctx) {
      if (req.ids.length > 1000) throw new InvalidArgumentError(`ids: at most 1000 per request, got ${req.ids.length}`);
      const cc = await engine.collection(req.collection, ctx.signal);
      const spec = cc.collection;
      if (!spec) throw new InvalidArgumentError(`collection ${req.collection} has no spec`);
      const groups = idsByShard(req.ids, spec.shards);
      const placements = cc.shards.filter((p) => groups.has(p.shard));
      const resolved = await engine.resolve(req.consistency, placements.map((p) => p.partition), ctx.signal, ctx.timeoutMs() ?? 30_000);
      const budget = budgetOf(engine, ctx);
      const stop = metrics.fanoutSeconds.startTimer({ method: "get" });
      const results = await Promise.allSettled(
        placements.map((p) =>
          engine.onReplica(p, budget, (client, attempt) =>
            client.getShardRecords(
              { collection: req.collection, uid: cc.uid, shard: p.shard, ids: groups.get(p.shard) ?? [], read: readTarget(resolved.target(p.partition), attempt.waitMs) },
              attempt.call,
            ),
          ),
        ),
      );
      stop();
      const { values } = settle(results, placements.map((p) => p.shard), false);
      const byId = new Map<string, StoredRecord>();
      for (const v of values) for (const r of v.records) byId.set(r.id, r);
      const records = req.ids.flatMap((id) => {
        const r = byId.get(id);
        return r ? [r] : [];
      });
      const readTs = resolved.level === Consistency.EVENTUAL ? minApplied(values.map((v) => v.applied?.ts ?? 0n)) : resolved.readTs;
      return { records, read: { level: resolved.level, readTs, observedTs: maxApplied(values.map((v) => v.applied?.ts ?? 0n)) } };
    },

    async query(req, ctx) {
      if (req.limit < 1 || req.limit > 1000) throw new InvalidArgumentError(`limit: must be between 1 and 1000, got ${req.limit}`);
      const cc = await engine.collection(req.collection, ctx.signal);
      const resolved = await engine.resolve(req.consistency, cc.shards.map((s) => s.partition), ctx.signal, ctx.timeoutMs() ?? 30_000);
      const budget = budgetOf(engine, ctx);
      const stop = metrics.fanoutSeconds.startTimer({ method: "query" });
      const results = await Promise.allSettled(
        cc.shards.map((p) =>
          engine.onReplica(p, budget, (client, attempt) =>
            client.queryShard(
              {
                collection: req.collection,
                uid: cc.uid,
                shard: p.shard,
                filterJson: req.filterJson,
                limit: req.limit,
                afterId: req.afterId,
                read: readTarget(resolved.target(p.partition), attempt.waitMs),
              },
              attempt.call,
            ),
          ),
        ),
      );
      stop();
      const { values } = settle(results, cc.shards.map((s) => s.shard), false);
      const { records, hasMore } = mergePages(values.map((v) => v.records), req.limit);
      const readTs = resolved.level === Consistency.EVENTUAL ? minApplied(values.map((v) => v.applied?.ts ?? 0n)) : resolved.readTs;
      return { records, hasMore, read: { level: resolved.level, readTs, observedTs: maxApplied(values.map((v) => v.applied?.ts ?? 0n)) } };
    },
  };
}

function minApplied(ts: bigint[]): bigint {
  return ts.length === 0 ? 0n : ts.reduce((m, t) => (t < m ? t : m));
}

function maxApplied(ts: bigint[]): bigint {
  return ts.reduce((m, t) => (t > m ? t : m), 0n);
}
