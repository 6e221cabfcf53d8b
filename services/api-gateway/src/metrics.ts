// The gateway's own metrics, registered once on the process registry (created in main.ts).
// RPC latency by method and code comes from rpcMetricsInterceptor (startRpcServer).
// Labels are bounded: methods, ops, field kinds from a fixed list, never ids or names.
import { Counter, Gauge, type Registry } from "prom-client";

export interface GatewayMetrics {
  readonly rowsWritten: Counter<"op">;
  readonly writeRetriesDeduplicated: Counter<"op">;
  readonly validationRejections: Counter<"method" | "kind">;
  readonly authFailures: Counter<"reason">;
  readonly rateLimited: Counter<"limit">;
  readonly catalogRevision: Gauge<string>;
  readonly catalogCollections: Gauge<string>;
  readonly catalogWatchRestarts: Counter<string>;
  readonly watchStreams: Gauge<string>;
  readonly watchBufferedChanges: Gauge<string>;
  readonly storageClients: Gauge<string>;
  readonly queryRetries: Counter<"reason">;
}

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Counter) return existing;
  return new Counter<L>({ name, help, labelNames, registers: [registry] });
}

function gauge(registry: Registry, name: string, help: string): Gauge<string> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Gauge) return existing;
  return new Gauge({ name, help, registers: [registry] });
}

/**
 * Registers the gateway's metrics on `registry`; calling it again on the same registry
 * (a gateway restarted in one process, as in standalone mode) reuses them.
 */
export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  return {
    rowsWritten: counter(
      registry,
      "vecraft_gateway_rows_written_total",
      "Records upserted and ids deleted through the gateway (acknowledged by the journal).",
      ["op"] as const,
    ),
    writeRetriesDeduplicated: counter(
      registry,
      "vecraft_gateway_write_retries_deduplicated_total",
      "Write retries the journal answered from its deduplication table (same request_id).",
      ["op"] as const,
    ),
    validationRejections: counter(
      registry,
      "vecraft_gateway_validation_rejections_total",
      "Requests rejected with INVALID_ARGUMENT by the gateway's validation, by method and field kind.",
      ["method", "kind"] as const,
    ),
    authFailures: counter(registry, "vecraft_gateway_auth_failures_total", "Requests refused by authentication or authorization.", ["reason"] as const),
    rateLimited: counter(registry, "vecraft_gateway_rate_limited_total", "Requests refused by a per-key rate limit.", ["limit"] as const),
    catalogRevision: gauge(registry, "vecraft_gateway_catalog_revision", "Revision of the cached catalog."),
    catalogCollections: gauge(registry, "vecraft_gateway_catalog_collections", "Collections in the cached catalog."),
    catalogWatchRestarts: counter(
      registry,
      "vecraft_gateway_catalog_watch_restarts_total",
      "Times the catalog watch was reopened after an error or the end of the stream.",
    ),
    watchStreams: gauge(registry, "vecraft_gateway_watch_streams", "Open WatchChanges streams."),
    watchBufferedChanges: gauge(
      registry,
      "vecraft_gateway_watch_buffered_changes",
      "Record changes buffered by WatchChanges streams while merging partitions (bounded per stream).",
    ),
    storageClients: gauge(registry, "vecraft_gateway_storage_clients", "Storage node clients kept open."),
    queryRetries: counter(
      registry,
      "vecraft_gateway_query_retries_total",
      "Reads retried on another query processor, by why the previous one failed (connection, unavailable).",
      ["reason"] as const,
    ),
  };
}

const KNOWN_KINDS = new Set([
  "name",
  "dimension",
  "metric",
  "shards",
  "replication_factor",
  "hnsw",
  "fields",
  "records",
  "records.id",
  "records.vector",
  "records.metadata",
  "ids",
  "collection",
  "vector",
  "k",
  "ef",
  "filter",
  "limit",
  "page_token",
  "request_id",
  "session_token",
  "consistency",
  "id",
  "from_ts",
  "to_ts",
]);

/**
 * A bounded label for the field a validation error names: indices and anything below
 * `metadata`, `filter`, `hnsw`, `fields` or `consistency` are dropped
 * (`records[3].metadata.genre` -> `records.metadata`), and unknown paths become "other".
 */
export function fieldKind(field: string): string {
  const parts = field
    .replace(/\[[^\]]*\]/g, "")
    .split(".")
    .filter((p) => p !== "");
  let kind = parts[0] ?? "other";
  if (kind === "records" && parts[1] !== undefined) kind = `records.${parts[1]}`;
  if (kind.endsWith("session_token")) kind = "session_token";
  return KNOWN_KINDS.has(kind) ? kind : "other";
}
