// The gateway's configuration: defaults < config file < environment < flags, validated
// once at startup into a frozen object with normalized units (...Ms, ...Bytes).
import { defineConfig, loadConfig, registrationFields, type ConfigOf, type LoadConfigOptions } from "@vecraft/common";

export const gatewayConfigSchema = defineConfig({
  host: { type: "string", default: "127.0.0.1", env: "VECRAFT_HOST", doc: "Interface to listen on." },
  port: {
    type: "int",
    default: 8080,
    min: 0,
    max: 65535,
    env: "VECRAFT_PORT",
    doc: "Port for the public API (gRPC, Connect JSON over HTTP/1.1 and HTTP/2), /metrics, /healthz, /readyz.",
  },
  journalUrl: { type: "string", default: "http://127.0.0.1:7100", nonEmpty: true, env: "VECRAFT_JOURNAL_URL", doc: "Base URL of the journal service." },
  metaUrl: {
    type: "string",
    default: "http://127.0.0.1:7200",
    nonEmpty: true,
    env: "VECRAFT_META_URL",
    doc: "Base URL of the meta-manager (catalog, shard map, nodes; the gateway registers there).",
  },
  queryUrl: {
    type: "string",
    default: "http://127.0.0.1:7400",
    nonEmpty: true,
    env: "VECRAFT_QUERY_URL",
    doc: "Query processor used when the catalog lists none alive (otherwise reads go to the registered ones, round-robin).",
  },
  ...registrationFields("gateway-0", "gateway"),
  apiKeysFile: {
    type: "string",
    optional: true,
    env: "VECRAFT_API_KEYS_FILE",
    doc: "JSON file of API keys ({id, key_sha256 | key, role, collections?, requests_per_second?, bytes_per_second?}); absent: the gateway is open.",
  },
  tlsCertFile: { type: "string", optional: true, env: "VECRAFT_TLS_CERT_FILE", doc: "PEM certificate; with --tls-key-file the gateway serves TLS only." },
  tlsKeyFile: { type: "string", optional: true, env: "VECRAFT_TLS_KEY_FILE", doc: "PEM private key of --tls-cert-file." },
  maxBatchRecords: { type: "int", default: 1000, min: 1, max: 100_000, doc: "Most records (Upsert) or ids (Delete, Get) in one request." },
  maxRequestBytes: {
    type: "bytes",
    default: "16MiB",
    min: 1024,
    max: 1024 * 1024 * 1024,
    doc: "Largest request message accepted by the transport (RESOURCE_EXHAUSTED above it).",
  },
  maxBatchBytes: {
    type: "bytes",
    default: "8MiB",
    min: 1024,
    max: 1024 * 1024 * 1024,
    doc: "Most bytes of ids, vectors (4 per dimension) and metadata JSON in one write batch (INVALID_ARGUMENT above it).",
  },
  maxMetadataBytes: { type: "bytes", default: "64KiB", min: 16, max: 16 * 1024 * 1024, doc: "Largest metadata object of one record, as JSON text." },
  defaultStalenessMs: {
    type: "duration",
    default: "1s",
    min: 1,
    max: 3_600_000,
    doc: "Staleness of BOUNDED reads (and reads with no consistency) that do not give one.",
  },
  maxTimeoutMs: { type: "duration", default: "5m", min: 1, max: 3_600_000, doc: "Longest deadline a client may ask for." },
  downstreamTimeoutMs: { type: "duration", default: "30s", min: 1, max: 3_600_000, doc: "Deadline of internal calls when the client gave none." },
  storageStatusTimeoutMs: {
    type: "duration",
    default: "2s",
    min: 1,
    max: 60_000,
    doc: "How long DescribeCollection, lineage and cluster status wait for a storage node.",
  },
  defaultRequestsPerSecond: {
    type: "number",
    default: 0,
    min: 0,
    max: 1e9,
    doc: "Per-key request rate limit for keys without their own (0: unlimited; also applies to the open gateway).",
  },
  defaultBytesPerSecond: {
    type: "bytes",
    default: 0,
    min: 0,
    max: 1024 * 1024 * 1024 * 1024,
    doc: "Per-key request-bytes rate limit for keys without their own (0: unlimited).",
  },
  watchBufferChanges: {
    type: "int",
    default: 10_000,
    min: 1,
    max: 10_000_000,
    doc: "Record changes WatchChanges buffers per partition while merging partitions.",
  },
  watchHeartbeatMs: {
    type: "duration",
    default: "1s",
    min: 10,
    max: 600_000,
    doc: "An idle WatchChanges stream gets a heartbeat (advancing resolved_ts) this often.",
  },
  maxStorageClients: { type: "int", default: 256, min: 1, max: 100_000, doc: "Storage node connections kept open (least recently used closed first)." },
  shutdownGraceMs: { type: "duration", default: "10s", min: 0, max: 600_000, doc: "How long in-flight requests may run after a shutdown signal." },
  logLevel: { type: "enum", values: ["debug", "info", "warn", "error"], default: "info", env: "VECRAFT_LOG_LEVEL", doc: "Log level." },
});

export type GatewayConfig = ConfigOf<typeof gatewayConfigSchema>;

export function loadGatewayConfig(options: LoadConfigOptions = {}): GatewayConfig {
  return loadConfig(gatewayConfigSchema, options);
}
