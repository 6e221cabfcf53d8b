// The composition root every service process shares: --help, config (defaults < file <
// env < flags; a bad value exits 2 with every problem listed), one logger and one metrics
// registry, start, a "serving on" line on stdout, graceful shutdown on SIGINT/SIGTERM,
// and exit 1 with the reason when the service cannot start.
import type { Registry } from "prom-client";
import { ConfigError, formatConfigHelp, isHelpRequested, loadConfig, type ConfigOf, type ConfigSchema } from "./config.js";
import { onShutdownSignals } from "./lifecycle.js";
import { createLogger, isLogLevel, type Logger } from "./logger.js";
import { createMetrics } from "./metrics.js";

export interface ServiceMain<S extends ConfigSchema, R extends { readonly url: string; stop(): Promise<void> }> {
  /** Shown by --help, e.g. "vecraft journal service". */
  readonly title: string;
  /** Logger name and the `service` label of every metric, e.g. "journal". */
  readonly name: string;
  readonly schema: S;
  start(config: ConfigOf<S>, deps: { logger: Logger; registry: Registry }): Promise<R>;
  /** The line printed on stdout once serving (scripts and tests wait for "serving on <url>"). */
  announce(running: R, config: ConfigOf<S>): string;
}

export function runService<S extends ConfigSchema, R extends { readonly url: string; stop(): Promise<void> }>(spec: ServiceMain<S, R>, argv = process.argv.slice(2)): void {
  const main = async (): Promise<void> => {
    if (isHelpRequested(argv)) {
      process.stdout.write(formatConfigHelp(spec.schema, spec.title) + "\n");
      return;
    }
    let config: ConfigOf<S>;
    try {
      config = loadConfig(spec.schema, { argv });
    } catch (e) {
      if (e instanceof ConfigError) {
        process.stderr.write(`${e.message}\n`);
        process.exitCode = 2;
        return;
      }
      throw e;
    }
    const level = (config as { logLevel?: unknown }).logLevel;
    const logger = createLogger({ name: spec.name, ...(isLogLevel(level) ? { level } : {}) });
    const registry = createMetrics({ defaultLabels: { service: spec.name } });
    const running = await spec.start(config, { logger, registry });
    logger.info(`${spec.title} listening`, { url: running.url });
    process.stdout.write(`${spec.announce(running, config)}\n`);
    onShutdownSignals(async (reason) => {
      logger.info("shutting down", { reason });
      await running.stop();
      logger.info("stopped");
    });
  };
  main().catch((e: unknown) => {
    process.stderr.write(`${spec.title} failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
