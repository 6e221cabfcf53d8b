import { Code } from "@connectrpc/connect";

export type LogLevel = "debug" | "info" | "warn" | "error";

/** Structured context attached to a log line. Values are serialised safely (bigint, errors, cycles). */
export type LogFields = Readonly<Record<string, unknown>>;

/**
 * The logger every service and shared library receives by injection (never `console`).
 * One JSON object per line: `time`, `level`, `name`, `msg`, then the fields.
 */
export interface Logger {
  readonly level: LogLevel;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (a child's fields win over its parent's). */
  child(fields: LogFields): Logger;
  isLevelEnabled(level: LogLevel): boolean;
}

/** Where lines go; `process.stdout` and any `Writable` fit. */
export interface LogSink {
  write(chunk: string): unknown;
}

export interface LoggerOptions {
  /** The component, e.g. "journal-service"; appears as `name` on every line. */
  name: string;
  /** Minimum level written. Default: `VECRAFT_LOG_LEVEL`, else "info". */
  level?: LogLevel;
  /** Default `process.stdout`. */
  stream?: LogSink;
  /** Milliseconds since the epoch; default `Date.now`. */
  clock?: () => number;
  /** Fields on every line. */
  fields?: LogFields;
  /** Where `VECRAFT_LOG_LEVEL` is read from; default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
}

export const LOG_LEVELS: readonly LogLevel[] = Object.freeze(["debug", "info", "warn", "error"]);

const SEVERITY: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };

export function isLogLevel(v: unknown): v is LogLevel {
  return typeof v === "string" && (LOG_LEVELS as readonly string[]).includes(v);
}

const RESERVED = new Set(["time", "level", "name", "msg"]);
const MAX_DEPTH = 8;
const MAX_CAUSES = 5;

/** Turns an error into plain data: name, message, code, stack and (a few) causes. */
export function serializeError(e: Error, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = { name: e.name, message: e.message };
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string") {
    out["code"] = code;
  } else if (typeof code === "number") {
    // Connect and Vecraft errors carry a numeric Connect code; its name reads better.
    out["code"] = Code[code] ?? code;
  }
  if (e.stack !== undefined) {
    out["stack"] = e.stack;
  }
  if (e.cause !== undefined && depth < MAX_CAUSES) {
    out["cause"] = e.cause instanceof Error ? serializeError(e.cause, depth + 1) : toJsonSafe(e.cause, new Set(), 1);
  }
  return out;
}

/** Makes a value JSON-safe: bigint as string, errors as data, cycles and depth cut off. */
function toJsonSafe(v: unknown, ancestors: Set<object>, depth: number): unknown {
  switch (typeof v) {
    case "bigint":
      return v.toString();
    case "function":
    case "symbol":
      return String(v);
    case "number":
      return Number.isFinite(v) ? v : String(v);
    case "undefined":
      return undefined;
    case "string":
    case "boolean":
      return v;
    default:
      break;
  }
  if (v === null) {
    return null;
  }
  const obj = v as object;
  if (obj instanceof Error) {
    return serializeError(obj);
  }
  if (obj instanceof Date) {
    return Number.isNaN(obj.getTime()) ? "Invalid Date" : obj.toISOString();
  }
  if (ArrayBuffer.isView(obj)) {
    return `<${obj.byteLength} bytes>`;
  }
  if (ancestors.has(obj)) {
    return "[Circular]";
  }
  if (depth >= MAX_DEPTH) {
    return "[Object]";
  }
  ancestors.add(obj);
  try {
    if (Array.isArray(obj)) {
      return obj.map((x: unknown) => toJsonSafe(x, ancestors, depth + 1));
    }
    if (obj instanceof Map) {
      const m: Record<string, unknown> = {};
      for (const [k, x] of obj as Map<unknown, unknown>) {
        m[String(k)] = toJsonSafe(x, ancestors, depth + 1);
      }
      return m;
    }
    if (obj instanceof Set) {
      return [...(obj as Set<unknown>)].map((x) => toJsonSafe(x, ancestors, depth + 1));
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(obj)) {
      out[k] = toJsonSafe(x, ancestors, depth + 1);
    }
    return out;
  } finally {
    ancestors.delete(obj);
  }
}

class JsonLogger implements Logger {
  readonly level: LogLevel;
  readonly #name: string;
  readonly #sink: LogSink;
  readonly #clock: () => number;
  readonly #fields: LogFields;
  readonly #threshold: number;

  constructor(name: string, level: LogLevel, sink: LogSink, clock: () => number, fields: LogFields) {
    this.#name = name;
    this.level = level;
    this.#sink = sink;
    this.#clock = clock;
    this.#fields = fields;
    this.#threshold = SEVERITY[level];
  }

  isLevelEnabled(level: LogLevel): boolean {
    return SEVERITY[level] >= this.#threshold;
  }

  debug(msg: string, fields?: LogFields): void {
    this.#write("debug", msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.#write("info", msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.#write("warn", msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.#write("error", msg, fields);
  }

  child(fields: LogFields): Logger {
    return new JsonLogger(this.#name, this.level, this.#sink, this.#clock, { ...this.#fields, ...fields });
  }

  #write(level: LogLevel, msg: string, fields: LogFields | undefined): void {
    if (SEVERITY[level] < this.#threshold) {
      return;
    }
    const line: Record<string, unknown> = {
      time: new Date(this.#clock()).toISOString(),
      level,
      name: this.#name,
      msg,
    };
    const ancestors = new Set<object>();
    for (const source of [this.#fields, fields ?? {}]) {
      for (const [k, v] of Object.entries(source)) {
        // A field may not overwrite the envelope; keep it under another key instead of losing it.
        line[RESERVED.has(k) ? `field_${k}` : k] = toJsonSafe(v, ancestors, 1);
      }
    }
    this.#sink.write(JSON.stringify(line) + "\n");
  }
}

/**
 * A small structured JSON logger with no dependency. The level comes from `level`, else
 * `VECRAFT_LOG_LEVEL`, else "info"; an invalid `VECRAFT_LOG_LEVEL` is reported once, as
 * a warning, instead of being silently ignored.
 */
export function createLogger(options: LoggerOptions): Logger {
  const env = options.env ?? process.env;
  const fromEnv = env["VECRAFT_LOG_LEVEL"];
  const envLevel = fromEnv === undefined || fromEnv === "" ? undefined : fromEnv.toLowerCase();
  const level: LogLevel = options.level ?? (isLogLevel(envLevel) ? envLevel : "info");
  const logger = new JsonLogger(
    options.name,
    level,
    options.stream ?? process.stdout,
    options.clock ?? Date.now,
    options.fields ?? {},
  );
  if (options.level === undefined && envLevel !== undefined && !isLogLevel(envLevel)) {
    logger.warn("ignoring invalid VECRAFT_LOG_LEVEL", { value: fromEnv, expected: LOG_LEVELS });
  }
  return logger;
}

/** A logger that writes nothing, for tests. */
export const silentLogger: Logger = Object.freeze({
  level: "error" as const,
  debug(): void {},
  info(): void {},
  warn(): void {},
  error(): void {},
  child(): Logger {
    return silentLogger;
  },
  isLevelEnabled(): boolean {
    return false;
  },
});
