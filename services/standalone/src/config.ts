// Standalone configuration: the few things a newcomer sets. Everything else takes each
// service's defaults.
import { defineConfig, loadConfig, type ConfigOf, type LoadConfigOptions } from "@vecraft/common";

export const standaloneConfigSchema = defineConfig({
  host: { type: "string", default: "127.0.0.1", env: "VECRAFT_HOST", doc: "Interface the public API listens on (internal services stay on 127.0.0.1)." },
  port: { type: "int", default: 8080, min: 0, max: 65535, env: "VECRAFT_PORT", doc: "Port of the public API (gRPC and JSON over HTTP/1.1 and HTTP/2)." },
  dataDir: { type: "string", default: "./data", nonEmpty: true, env: "VECRAFT_DATA_DIR", doc: "Data directory (journal, meta, storage)." },
  partitions: { type: "int", default: 4, min: 1, max: 256, doc: "Journal partitions (fixed when the data directory is created)." },
  apiKeysFile: { type: "string", optional: true, env: "VECRAFT_API_KEYS_FILE", doc: "JSON file of API keys; without it the API is open." },
  tickIntervalMs: { type: "duration", default: 50, min: 1, max: 60_000, doc: "Journal tick interval (bounds how long bounded reads wait)." },
  logLevel: { type: "enum", values: ["debug", "info", "warn", "error"], default: "info", env: "VECRAFT_LOG_LEVEL", doc: "Log level." },
  shutdownGraceMs: { type: "duration", default: "5s", min: 0, max: 600_000, doc: "How long in-flight requests may run after Ctrl-C." },
});

export type StandaloneConfig = ConfigOf<typeof standaloneConfigSchema>;

export function loadStandaloneConfig(options: LoadConfigOptions = {}): StandaloneConfig {
  return loadConfig(standaloneConfigSchema, options);
}
