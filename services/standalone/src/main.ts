#!/usr/bin/env node
// `pnpm start`: Vecraft standalone. Prints the URL it serves on; Ctrl-C stops it cleanly.
import { ConfigError, createLogger, createMetrics, formatConfigHelp, isHelpRequested, onShutdownSignals } from "@vecraft/common";
import { loadStandaloneConfig, standaloneConfigSchema, type StandaloneConfig } from "./config.js";
import { startStandalone } from "./standalone.js";

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (isHelpRequested(argv)) {
    process.stdout.write(formatConfigHelp(standaloneConfigSchema, "vecraft standalone (pnpm start)") + "\n");
    return;
  }
  let config: StandaloneConfig;
  try {
    config = loadStandaloneConfig({ argv });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
  const logger = createLogger({ name: "vecraft", level: config.logLevel });
  const running = await startStandalone(config, { logger, registry: createMetrics({ defaultLabels: { mode: "standalone" } }) });
  process.stdout.write(`Vecraft standalone serving on ${running.url} (data in ${config.dataDir}); Ctrl-C to stop\n`);
  onShutdownSignals(async (reason) => {
    logger.info("shutting down", { reason });
    await running.stop();
    logger.info("stopped");
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`vecraft failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
