// Storage node configuration: defaults < config file < environment < flags.
import { defineConfig, loadConfig, registrationFields, type ConfigOf, type LoadConfigOptions } from "@vecraft/common";

export const storageConfigSchema = defineConfig({
  host: { type: "string", default: "127.0.0.1", env: "VECRAFT_HOST", doc: "Interface to listen on." },
  port: { type: "int", default: 7300, min: 0, max: 65535, env: "VECRAFT_STORAGE_PORT", doc: "Port for StorageService, /metrics, /healthz, /readyz." },
  dataDir: { type: "string", default: "./data", nonEmpty: true, env: "VECRAFT_DATA_DIR", doc: "Data directory; shards live in <data-dir>/storage." },
  ...registrationFields("storage-0", "storage node"),
  journalUrl: { type: "string", default: "http://127.0.0.1:7100", env: "VECRAFT_JOURNAL_URL", doc: "Base URL of the journal service." },
  metaUrl: { type: "string", default: "", env: "VECRAFT_META_URL", doc: "Base URL of the meta-manager to register with (empty: do not register)." },
  partitions: { type: "stringList", default: [], doc: "Partitions to follow (comma-separated); empty means every partition the journal has." },
  hostAll: { type: "bool", default: true, doc: "Host a replica of every shard (standalone); false follows the catalog's placements." },
  exactThreshold: { type: "int", default: 2048, min: 0, max: 1_000_000, doc: "Filters matching at most this many records are scored exactly." },
  checkpointEveryWrites: { type: "int", default: 50_000, min: 1, max: 100_000_000, doc: "Checkpoint a shard's index after this many applied writes." },
  subscribeBatchEntries: { type: "int", default: 500, min: 1, max: 10_000, doc: "Journal entries per subscription message." },
  defaultWaitMs: { type: "duration", default: "5s", min: 1, max: 600_000, doc: "How long a read waits for its read target by default." },
  maxWaitMs: { type: "duration", default: "60s", min: 1, max: 600_000, doc: "Longest wait a read may ask for." },
  shutdownGraceMs: { type: "duration", default: "10s", min: 0, max: 600_000, doc: "How long in-flight requests may run after a shutdown signal." },
  logLevel: { type: "enum", values: ["debug", "info", "warn", "error"], default: "info", env: "VECRAFT_LOG_LEVEL", doc: "Log level." },
});

export type StorageConfig = ConfigOf<typeof storageConfigSchema>;

export function loadStorageConfig(options: LoadConfigOptions = {}): StorageConfig {
  return loadConfig(storageConfigSchema, options);
}
