// Query processor configuration: defaults < config file < environment < flags.
import { defineConfig, loadConfig, registrationFields, type ConfigOf, type LoadConfigOptions } from "@vecraft/common";

export const queryConfigSchema = defineConfig({
  host: { type: "string", default: "127.0.0.1", env: "VECRAFT_HOST", doc: "Interface to listen on." },
  port: { type: "int", default: 7400, min: 0, max: 65535, env: "VECRAFT_QUERY_PORT", doc: "Port for QueryService, /metrics, /healthz, /readyz." },
  journalUrl: { type: "string", default: "http://127.0.0.1:7100", env: "VECRAFT_JOURNAL_URL", doc: "Base URL of the journal (barriers for strong reads)." },
  metaUrl: {
    type: "string",
    default: "http://127.0.0.1:7200",
    nonEmpty: true,
    env: "VECRAFT_META_URL",
    doc: "Base URL of the meta-manager (catalog and shard map; the process registers there).",
  },
  ...registrationFields("query-0", "query processor"),
  replicaCooldownMs: {
    type: "duration",
    default: "1s",
    min: 1,
    max: 600_000,
    doc: "A replica that failed is tried last for this long, doubled per further failure in a row.",
  },
  replicaMaxCooldownMs: { type: "duration", default: "30s", min: 1, max: 3_600_000, doc: "Longest cool-down of a failing replica." },
  defaultStalenessMs: { type: "duration", default: "1s", min: 0, max: 3_600_000, doc: "Staleness bound of BOUNDED reads that do not give one." },
  defaultWaitMs: { type: "duration", default: "5s", min: 1, max: 600_000, doc: "How long a shard may wait for its read target when the request has no deadline." },
  maxStorageClients: { type: "int", default: 256, min: 1, max: 100_000, doc: "Storage node connections kept open (least recently used closed first)." },
  shutdownGraceMs: { type: "duration", default: "10s", min: 0, max: 600_000, doc: "How long in-flight requests may run after a shutdown signal." },
  logLevel: { type: "enum", values: ["debug", "info", "warn", "error"], default: "info", env: "VECRAFT_LOG_LEVEL", doc: "Log level." },
});

export type QueryConfig = ConfigOf<typeof queryConfigSchema>;

export function loadQueryConfig(options: LoadConfigOptions = {}): QueryConfig {
  return loadConfig(queryConfigSchema, options);
}
