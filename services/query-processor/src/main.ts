#!/usr/bin/env node
// Composition root of a query processor: config -> deps -> start -> signals.
import { ConfigError, createLogger, createMetrics, formatConfigHelp, isHelpRequested, onShutdownSignals } from "@vecraft/common";
import { loadQueryConfig, queryConfigSchema, type QueryConfig } from "./config.js";
import { start } from "./service.js";

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (isHelpRequested(argv)) {
    process.stdout.write(formatConfigHelp(queryConfigSchema, "vecraft query processor") + "\n");
    return;
  }
  let config: QueryConfig;
  try {
    config = loadQueryConfig({ argv });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
  const logger = createLogger({ name: "query", level: config.logLevel });
  const running = await start(config, { logger, registry: createMetrics({ defaultLabels: { service: "query" } }) });
  process.stdout.write(`Vecraft query processor serving on ${running.url}\n`);
  onShutdownSignals(async (reason) => {
    logger.info("shutting down", { reason });
    await running.stop();
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`query processor failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
