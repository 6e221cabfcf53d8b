import { Histogram, type Registry } from "prom-client";

export interface QueryMetrics {
  readonly fanoutSeconds: Histogram<"method">;
  readonly shardsPerSearch: Histogram<string>;
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
  };
}
