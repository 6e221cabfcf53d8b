// Standalone mode: every role in one process, talking to each other over loopback
// HTTP/2 through their protos (the same code paths as a cluster), with the embedded
// meta store and one journal replica. Services are started in dependency order and
// stopped in reverse.
import { join } from "node:path";
import type { Registry } from "prom-client";
import { createMetrics, type Logger } from "@vecraft/common";
import { loadGatewayConfig, start as startGateway } from "@vecraft/api-gateway";
import { loadJournalConfig, start as startJournal } from "@vecraft/journal-service";
import { loadMetaConfig, start as startMeta } from "@vecraft/meta-manager";
import { loadQueryConfig, start as startQuery } from "@vecraft/query-processor";
import { loadStorageConfig, start as startStorage } from "@vecraft/storage-node";
import type { StandaloneConfig } from "./config.js";

export interface RunningStandalone {
  /** The public API's base URL. */
  readonly url: string;
  /** Internal services' URLs, for diagnostics and tests. */
  readonly internal: Readonly<Record<"journal" | "meta" | "storage" | "query", string>>;
  stop(): Promise<void>;
}

/** Builds argv for a service's config loader; the environment is not consulted. */
function argv(flags: Record<string, string | number | undefined>): string[] {
  return Object.entries(flags).flatMap(([k, v]) => (v === undefined ? [] : [`--${k}`, String(v)]));
}

export async function startStandalone(config: StandaloneConfig, deps: { logger: Logger; registry?: Registry }): Promise<RunningStandalone> {
  const registry = deps.registry ?? createMetrics();
  const log = (name: string): Logger => deps.logger.child({ service: name });
  const common = { "log-level": config.logLevel, "shutdown-grace-ms": config.shutdownGraceMs };
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.splice(0).reverse()) await stop();
  };
  try {
    const journal = await startJournal(
      loadJournalConfig({ env: {}, argv: argv({ ...common, host: "127.0.0.1", port: 0, "data-dir": config.dataDir, partitions: config.partitions, "tick-interval-ms": config.tickIntervalMs }) }),
      { logger: log("journal"), registry },
    );
    stops.push(() => journal.stop());
    const meta = await startMeta(
      loadMetaConfig({ env: {}, argv: argv({ ...common, host: "127.0.0.1", port: 0, "data-dir": config.dataDir, partitions: config.partitions, "journal-url": journal.url }) }),
      { logger: log("meta"), registry },
    );
    stops.push(() => meta.stop());
    const storage = await startStorage(
      loadStorageConfig({
        env: {},
        argv: argv({ ...common, host: "127.0.0.1", port: 0, "data-dir": config.dataDir, "node-id": "storage-0", "journal-url": journal.url, "meta-url": meta.url }),
      }),
      { logger: log("storage"), registry },
    );
    stops.push(() => storage.stop());
    const query = await startQuery(
      loadQueryConfig({ env: {}, argv: argv({ ...common, host: "127.0.0.1", port: 0, "journal-url": journal.url, "meta-url": meta.url }) }),
      { logger: log("query"), registry },
    );
    stops.push(() => query.stop());
    const gateway = await startGateway(
      loadGatewayConfig({
        env: {},
        argv: argv({
          ...common,
          host: config.host,
          port: config.port,
          "journal-url": journal.url,
          "meta-url": meta.url,
          "query-url": query.url,
          "api-keys-file": config.apiKeysFile,
        }),
      }),
      { logger: log("gateway"), registry },
    );
    stops.push(() => gateway.stop());
    let stopping: Promise<void> | undefined;
    return {
      url: gateway.url,
      internal: { journal: journal.url, meta: meta.url, storage: storage.url, query: query.url },
      stop() {
        stopping ??= stopAll();
        return stopping;
      },
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

export function dataLayout(dataDir: string): Record<string, string> {
  return { journal: join(dataDir, "journal"), meta: join(dataDir, "meta"), storage: join(dataDir, "storage") };
}
