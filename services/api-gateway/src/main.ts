#!/usr/bin/env node
// Composition root of the gateway: config -> deps -> start -> signals.
import { ConfigError, createLogger, createMetrics, formatConfigHelp, isHelpRequested, onShutdownSignals } from "@vecraft/common";
import { gatewayConfigSchema, loadGatewayConfig, type GatewayConfig } from "./config.js";
import { start } from "./service.js";

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (isHelpRequested(argv)) {
    process.stdout.write(formatConfigHelp(gatewayConfigSchema, "vecraft api gateway") + "\n");
    return;
  }
  let config: GatewayConfig;
  try {
    config = loadGatewayConfig({ argv });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
  const logger = createLogger({ name: "gateway", level: config.logLevel });
  const registry = createMetrics({ defaultLabels: { service: "gateway" } });
  const running = await start(config, { logger, registry });
  logger.info("gateway listening", { url: running.url, journalUrl: config.journalUrl, metaUrl: config.metaUrl, queryUrl: config.queryUrl });
  process.stdout.write(`Vecraft gateway serving on ${running.url}; Ctrl-C to stop\n`);
  onShutdownSignals(async (reason) => {
    logger.info("shutting down", { reason });
    await running.stop();
    logger.info("stopped");
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`gateway failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
