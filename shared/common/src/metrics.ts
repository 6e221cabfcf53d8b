import { Code } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { toConnectError } from "./errors.js";

export interface MetricsOptions {
  /** Prefix for the default process metrics, e.g. "vecraft_". Default none. */
  prefix?: string;
  /** Register prom-client's default metrics (CPU, memory, GC, event-loop lag). Default true. */
  collectDefaults?: boolean;
  /** Labels on every metric of the registry, e.g. `{ service: "journal" }`. Keep them low-cardinality. */
  defaultLabels?: Readonly<Record<string, string>>;
}

/**
 * Creates the process's metrics registry. Call it once, in the composition root, and
 * inject the result: the global registry is never used, so that tests and the standalone
 * mode (several services in one process) cannot collide on metric names.
 */
export function createMetrics(options: MetricsOptions = {}): Registry {
  const registry = new Registry();
  if (options.defaultLabels !== undefined) {
    registry.setDefaultLabels({ ...options.defaultLabels });
  }
  if (options.collectDefaults ?? true) {
    // Includes nodejs_eventloop_lag_* : the signal that a synchronous native call
    // (SQLite, usearch) is blocking the loop.
    collectDefaultMetrics({ register: registry, prefix: options.prefix ?? "", eventLoopMonitoringPrecision: 10 });
  }
  return registry;
}

/** Buckets in seconds, from half a millisecond to a minute. */
export const RPC_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
]);

/** The wire name of a code ("not_found"), or "ok" for success. */
export function codeLabel(code: Code | undefined): string {
  if (code === undefined) {
    return "ok";
  }
  const name: string | undefined = Code[code];
  if (name === undefined) {
    return "unknown";
  }
  return name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

function histogramIn(registry: Registry, name: string, help: string, labelNames: readonly string[]): Histogram<string> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Histogram) {
    return existing;
  }
  return new Histogram({ name, help, labelNames, buckets: [...RPC_DURATION_BUCKETS], registers: [registry] });
}

function gaugeIn(registry: Registry, name: string, help: string, labelNames: readonly string[]): Gauge<string> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Gauge) {
    return existing;
  }
  return new Gauge({ name, help, labelNames, registers: [registry] });
}

/**
 * Records `vecraft_rpc_duration_seconds{service,method,code}` (and the gauge
 * `vecraft_rpc_in_flight{service,method}`) for every RPC the server handles. A streaming
 * response is timed until the stream ends, not until the handler returns its iterable:
 * `res.message` is wrapped so that its duration and its errors are seen. A stream the
 * client abandons is recorded as "canceled". Errors are labelled by `toConnectError`, so
 * a `VecraftError` counts under its own code wherever the error mapping happens.
 *
 * Put it first in the interceptor list (outermost), so it sees the final code.
 * Calling it twice for one registry reuses the same metrics.
 */
export function rpcMetricsInterceptor(registry: Registry): Interceptor {
  const duration = histogramIn(
    registry,
    "vecraft_rpc_duration_seconds",
    "RPC handling time in seconds, until the last response message for streams.",
    ["service", "method", "code"],
  );
  const inFlight = gaugeIn(registry, "vecraft_rpc_in_flight", "RPCs being handled.", ["service", "method"]);
  return (next) => async (req) => {
    const labels = { service: req.service.typeName, method: req.method.name };
    const stopTimer = duration.startTimer(labels);
    inFlight.inc(labels);
    let stopped = false;
    const stop = (code: string): void => {
      if (!stopped) {
        stopped = true;
        stopTimer({ code });
        inFlight.dec(labels);
      }
    };
    try {
      const res = await next(req);
      if (!res.stream) {
        stop("ok");
        return res;
      }
      return { ...res, message: observeStream(res.message, stop) };
    } catch (e) {
      stop(codeLabel(toConnectError(e).code));
      throw e;
    }
  };
}

async function* observeStream<T>(stream: AsyncIterable<T>, stop: (code: string) => void): AsyncGenerator<T> {
  let code = "canceled";
  try {
    yield* stream;
    code = "ok";
  } catch (e) {
    code = codeLabel(toConnectError(e).code);
    throw e;
  } finally {
    // Also runs when the consumer stops early (client gone): `code` is still "canceled".
    stop(code);
  }
}
