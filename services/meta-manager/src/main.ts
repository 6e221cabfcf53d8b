#!/usr/bin/env node
// Composition root of the meta-manager: config -> deps -> start -> signals.
import { ConfigError, createLogger, createMetrics, formatConfigHelp, isHelpRequested, onShutdownSignals } from "@vecraft/common";
import { loadMetaConfig, metaConfigSchema, type MetaConfig } from "./config.js";
import { start } from "./service.js";

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (isHelpRequested(argv)) {
    process.stdout.write(formatConfigHelp(metaConfigSchema, "vecraft meta-manager") + "\n");
    return;
  }
  let config: MetaConfig;
  try {
    config = loadMetaConfig({ argv });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
  const logger = createLogger({ name: "meta", level: config.logLevel });
  const registry = createMetrics({ defaultLabels: { service: "meta" } });
  const running = await start(config, { logger, registry });
  logger.info("meta-manager listening", { url: running.url, dataDir: config.dataDir, partitions: config.partitions, journalUrl: config.journalUrl });
  process.stdout.write(`Vecraft meta-manager serving on ${running.url} (catalog in ${config.dataDir}/meta); Ctrl-C to stop\n`);
  onShutdownSignals(async (reason) => {
    logger.info("shutting down", { reason });
    await running.stop();
    logger.info("stopped");
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`meta-manager failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
