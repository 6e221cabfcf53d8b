// The journal service's configuration: defaults < config file < environment < flags,
// validated once at startup into a frozen object with normalized units.
import { defineConfig, loadConfig, registrationFields, type ConfigOf, type LoadConfigOptions } from "@vecraft/common";

export const journalConfigSchema = defineConfig({
  host: { type: "string", default: "127.0.0.1", env: "VECRAFT_HOST", doc: "Interface to listen on." },
  port: { type: "int", default: 7100, min: 0, max: 65535, env: "VECRAFT_JOURNAL_PORT", doc: "Port for the JournalService RPCs, /metrics, /healthz and /readyz." },
  dataDir: { type: "string", default: "./data", nonEmpty: true, env: "VECRAFT_DATA_DIR", doc: "Data directory; the journal lives in <data-dir>/journal." },
  ...registrationFields("journal-0", "journal"),
  metaUrl: { type: "string", default: "", env: "VECRAFT_META_URL", doc: "Base URL of the meta-manager to register with (empty: do not register)." },
  partitions: { type: "int", default: 4, min: 1, max: 1024, env: "VECRAFT_JOURNAL_PARTITIONS", doc: "Partitions hosted; fixed when the data directory is created." },
  segmentBytes: { type: "bytes", default: "64MiB", min: 64 * 1024, max: 1024 * 1024 * 1024, doc: "Roll to a new segment file past this size." },
  maxBatchBytes: { type: "bytes", default: "4MiB", min: 4096, max: 256 * 1024 * 1024, doc: "Most bytes written by one group commit (one fdatasync)." },
  maxBatchEntries: { type: "int", default: 10000, min: 1, max: 100000, doc: "Most entries in one Append request." },
  tickIntervalMs: { type: "duration", default: 50, min: 0, max: 60_000, doc: "An idle partition appends a TICK this often (0 disables ticks)." },
  maxClockOffsetMs: { type: "duration", default: 500, min: 1, max: 60_000, doc: "A causal token further ahead of the local clock is rejected." },
  dedupWindowBatches: { type: "int", default: 1024, min: 1, max: 1_000_000, doc: "Batches remembered per idempotent producer (must exceed its in-flight requests)." },
  dedupWindowEntries: { type: "int", default: 100_000, min: 1, max: 100_000_000, doc: "Entries remembered per idempotent producer." },
  dedupMaxProducers: { type: "int", default: 4096, min: 1, max: 10_000_000, doc: "Producers remembered per partition (least recently used forgotten first)." },
  subscribeBatchEntries: { type: "int", default: 1000, min: 1, max: 10_000, doc: "Default entries per Subscribe message." },
  subscribeBatchBytes: { type: "bytes", default: "4MiB", min: 4096, max: 64 * 1024 * 1024, doc: "Most bytes per Subscribe message." },
  subscribeHeartbeatMs: { type: "duration", default: "1s", min: 10, max: 60_000, doc: "An idle subscription gets an empty message this often." },
  auditWaitMs: { type: "duration", default: "5s", min: 0, max: 600_000, doc: "How long history queries wait for the audit index to catch up." },
  readMaxBytes: { type: "bytes", default: "64MiB", min: 1024, max: 1024 * 1024 * 1024, doc: "Largest request accepted." },
  shutdownGraceMs: { type: "duration", default: "10s", min: 0, max: 600_000, doc: "How long in-flight requests may run after a shutdown signal." },
  logLevel: { type: "enum", values: ["debug", "info", "warn", "error"], default: "info", env: "VECRAFT_LOG_LEVEL", doc: "Log level." },
});

export type JournalConfig = ConfigOf<typeof journalConfigSchema>;

export function loadJournalConfig(options: LoadConfigOptions = {}): JournalConfig {
  return loadConfig(journalConfigSchema, options);
}
