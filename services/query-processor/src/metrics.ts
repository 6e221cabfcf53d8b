// The query processor's metrics. Labels are bounded: methods, failure reasons from a fixed
// list, and node ids (bounded by the nodes registered in the catalog).
import { Counter, Histogram, type Registry } from "prom-client";

export interface QueryMetrics {
  readonly fanoutSeconds: Histogram<"method">;
  readonly shardsPerSearch: Histogram<string>;
  readonly replicaAttempts: Counter<string>;
  readonly replicasTried: Histogram<string>;
  readonly replicaFailures: Counter<"node" | "reason">;
  readonly replicaRetries: Counter<"reason">;
}

export function createQueryMetrics(registry: Registry): QueryMetrics {
  return {
    fanoutSeconds: new Histogram({
      name: "vecraft_query_fanout_duration_seconds",
      help: "Time from fan-out to the last shard answer (includes waiting for read targets).",
      labelNames: ["method"] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [registry],
    }),
    shardsPerSearch: new Histogram({
      name: "vecraft_query_shards_per_search",
      help: "Shards a search fanned out to.",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    }),
    replicaAttempts: new Counter({
      name: "vecraft_query_replica_requests_total",
      help: "Requests sent to shard replicas (one per shard per read, plus retries).",
      registers: [registry],
    }),
    replicasTried: new Histogram({
      name: "vecraft_query_replicas_tried",
      help: "Replicas a shard read tried before it was answered or gave up (1: the first answered).",
      buckets: [1, 2, 3, 4, 6, 8],
      registers: [registry],
    }),
    replicaFailures: new Counter({
      name: "vecraft_query_replica_failures_total",
      help: "Shard replica calls that failed in a way another replica might not, by node and reason.",
      labelNames: ["node", "reason"] as const,
      registers: [registry],
    }),
    replicaRetries: new Counter({
      name: "vecraft_query_replica_retries_total",
      help: "Shard reads retried on another replica, by the reason the previous one failed.",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
  };
}
