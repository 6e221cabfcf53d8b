#!/usr/bin/env node
// Composition root of the journal service: config -> deps -> start -> signals.
import { ConfigError, createLogger, createMetrics, formatConfigHelp, isHelpRequested, onShutdownSignals } from "@vecraft/common";
import { journalConfigSchema, loadJournalConfig, type JournalConfig } from "./config.js";
import { start } from "./service.js";

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (isHelpRequested(argv)) {
    process.stdout.write(formatConfigHelp(journalConfigSchema, "vecraft journal service") + "\n");
    return;
  }
  let config: JournalConfig;
  try {
    config = loadJournalConfig({ argv });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
  const logger = createLogger({ name: "journal", level: config.logLevel });
  const registry = createMetrics({ defaultLabels: { service: "journal" } });
  const running = await start(config, { logger, registry });
  logger.info("journal service listening", { url: running.url, dataDir: config.dataDir, partitions: config.partitions, nodeId: config.nodeId });
  process.stdout.write(`Vecraft journal serving on ${running.url} (data in ${config.dataDir}); Ctrl-C to stop\n`);
  onShutdownSignals(async (reason) => {
    logger.info("shutting down", { reason });
    await running.stop();
    logger.info("stopped");
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`journal service failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
