// The meta-manager's configuration: defaults < config file < environment < flags,
// validated once at startup into a frozen object with normalized units.
import { defineConfig, loadConfig, type ConfigOf, type LoadConfigOptions } from "@vecraft/common";

export const metaConfigSchema = defineConfig({
  host: { type: "string", default: "127.0.0.1", env: "VECRAFT_HOST", doc: "Interface to listen on." },
  port: { type: "int", default: 7200, min: 0, max: 65535, env: "VECRAFT_META_PORT", doc: "Port for the MetaService RPCs, /metrics, /healthz and /readyz." },
  dataDir: {
    type: "string",
    default: "./data",
    nonEmpty: true,
    env: "VECRAFT_DATA_DIR",
    doc: "Data directory; the embedded store is <data-dir>/meta/meta.sqlite.",
  },
  partitions: {
    type: "int",
    default: 4,
    min: 1,
    max: 1024,
    env: "VECRAFT_JOURNAL_PARTITIONS",
    doc: "Journal partitions shards are placed on; must equal the journal's (recorded in the store at first start).",
  },
  journalUrl: {
    type: "string",
    default: "http://127.0.0.1:7100",
    nonEmpty: true,
    env: "VECRAFT_JOURNAL_URL",
    doc: "Base URL of the journal (DDL entries are appended there); published in the catalog.",
  },
  nodeLeaseTtlMs: {
    type: "duration",
    default: "10s",
    min: 100,
    max: 600_000,
    doc: "Lease of a node that registers without a ttl; it must heartbeat within it.",
  },
  maxCollections: { type: "int", default: 10_000, min: 1, max: 1_000_000, doc: "Most collections in the catalog." },
  maxNodes: { type: "int", default: 1024, min: 1, max: 100_000, doc: "Most registered nodes." },
  maxWatchStreams: { type: "int", default: 1024, min: 1, max: 100_000, doc: "Most concurrent WatchCatalog streams." },
  watchCoalesceMs: {
    type: "duration",
    default: "10ms",
    min: 0,
    max: 10_000,
    doc: "A burst of catalog changes within this window is sent to watchers as one catalog.",
  },
  ddlAttemptTimeoutMs: { type: "duration", default: "5s", min: 1, max: 600_000, doc: "Deadline of one DDL append to the journal." },
  ddlRetryBudgetMs: { type: "duration", default: "30s", min: 0, max: 3_600_000, doc: "Time spent retrying the DDL appends of one create or drop." },
  reconcileIntervalMs: {
    type: "duration",
    default: "10s",
    min: 0,
    max: 3_600_000,
    doc: "How often collections left CREATING/DROPPING are resumed (0: only at startup).",
  },
  failover: {
    type: "bool",
    default: true,
    doc: "Replace the shard replicas of dead storage nodes (expired leases) and top shards up to their replication factor.",
  },
  failoverIntervalMs: {
    type: "duration",
    default: "5s",
    min: 0,
    max: 3_600_000,
    doc: "Safety-net pass of the failover controller (it also runs on every catalog change); 0: only on changes.",
  },
  failoverGraceMs: {
    type: "duration",
    default: "30s",
    min: 0,
    max: 3_600_000,
    doc:
      "A storage node must have been seen dead (lease expired) this long before its replicas move; a node that re-registers within it keeps them. " +
      "Moving a replica costs a full snapshot copy to another node, and a restart (a pod rescheduled, a large index restored) often outlasts the lease alone, " +
      "so the default waits 30 s on top of the lease (Elasticsearch delays reallocation by 1 min); lower it to heal faster when nodes rarely restart.",
  },
  partitionMapIntervalMs: {
    type: "duration",
    default: "5s",
    min: 0,
    max: 3_600_000,
    doc: "How often the journal partition map asks the journal nodes for their partitions (it also does on every catalog change); 0: only on changes.",
  },
  store: {
    type: "enum",
    values: ["embedded", "etcd"],
    default: "embedded",
    env: "VECRAFT_META_STORE",
    doc: "Where the catalog lives: the embedded SQLite file (standalone) or etcd (cluster; needs --etcd-endpoints).",
  },
  etcdEndpoints: {
    type: "stringList",
    default: [],
    env: "VECRAFT_ETCD_ENDPOINTS",
    doc: "etcd client URLs (comma-separated), used with --store etcd.",
  },
  historyRevisions: { type: "int", default: 10_000, min: 10, max: 10_000_000, doc: "Revisions of change history the embedded store keeps for watches." },
  readMaxBytes: { type: "bytes", default: "4MiB", min: 1024, max: 256 * 1024 * 1024, doc: "Largest request (and response) message." },
  shutdownGraceMs: { type: "duration", default: "10s", min: 0, max: 600_000, doc: "How long in-flight requests may run after a shutdown signal." },
  logLevel: { type: "enum", values: ["debug", "info", "warn", "error"], default: "info", env: "VECRAFT_LOG_LEVEL", doc: "Log level." },
});

export type MetaConfig = ConfigOf<typeof metaConfigSchema>;

export function loadMetaConfig(options: LoadConfigOptions = {}): MetaConfig {
  return loadConfig(metaConfigSchema, options);
}
