#!/usr/bin/env node
// Composition root of a storage node: config -> deps -> start -> signals.
import { ConfigError, createLogger, createMetrics, formatConfigHelp, isHelpRequested, onShutdownSignals } from "@vecraft/common";
import { loadStorageConfig, storageConfigSchema, type StorageConfig } from "./config.js";
import { start } from "./service.js";

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (isHelpRequested(argv)) {
    process.stdout.write(formatConfigHelp(storageConfigSchema, "vecraft storage node") + "\n");
    return;
  }
  let config: StorageConfig;
  try {
    config = loadStorageConfig({ argv });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
  const logger = createLogger({ name: "storage", level: config.logLevel });
  const running = await start(config, { logger, registry: createMetrics({ defaultLabels: { service: "storage" } }) });
  logger.info("storage node listening", { url: running.url, nodeId: config.nodeId, dataDir: config.dataDir });
  process.stdout.write(`Vecraft storage node ${config.nodeId} serving on ${running.url}\n`);
  onShutdownSignals(async (reason) => {
    logger.info("shutting down", { reason });
    await running.stop();
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`storage node failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
