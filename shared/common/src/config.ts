import { readFileSync } from "node:fs";

// ---------------------------------------------------------------------------------------
// Schema

interface FieldBase {
  /** One line for `--help`. */
  doc: string;
  /** Environment variable that sets the key, e.g. "VECRAFT_PORT". None when absent. */
  env?: string;
  /** Flag name without dashes; default the key in kebab-case (`dataDir` -> `--data-dir`). */
  flag?: string;
  /** Without a default the key is required, unless `optional` (then it may be undefined). */
  optional?: boolean;
  /** Hidden by `redactConfig` (API keys, passwords). */
  secret?: boolean;
}

export interface IntField extends FieldBase {
  type: "int";
  default?: number;
  min?: number;
  max?: number;
}

export interface NumberField extends FieldBase {
  type: "number";
  default?: number;
  min?: number;
  max?: number;
}

export interface StringField extends FieldBase {
  type: "string";
  default?: string;
  /** Reject the empty string (e.g. a data directory). */
  nonEmpty?: boolean;
}

export interface BoolField extends FieldBase {
  type: "bool";
  default?: boolean;
}

/** Milliseconds. Accepts 50, "50", "50ms", "2s", "1.5m", "1h", "1m30s". */
export interface DurationField extends FieldBase {
  type: "duration";
  default?: number | string;
  /** In ms. */
  min?: number;
  /** In ms. */
  max?: number;
}

/** Bytes. Accepts 1024, "512", "512B", "64KiB", "1MiB", "2GiB", "1MB" (SI: 10^6). */
export interface BytesField extends FieldBase {
  type: "bytes";
  default?: number | string;
  min?: number;
  max?: number;
}

export interface EnumField extends FieldBase {
  type: "enum";
  values: readonly string[];
  default?: string;
}

/** Comma-separated on the command line and in the environment, an array in the file. */
export interface StringListField extends FieldBase {
  type: "stringList";
  default?: readonly string[];
}

export type FieldSpec =
  | IntField
  | NumberField
  | StringField
  | BoolField
  | DurationField
  | BytesField
  | EnumField
  | StringListField;

export type FieldType = FieldSpec["type"];

export type ConfigSchema = Readonly<Record<string, FieldSpec>>;

type FieldValue<F> = F extends { type: "int" | "number" | "duration" | "bytes" }
  ? number
  : F extends { type: "string" }
    ? string
    : F extends { type: "bool" }
      ? boolean
      : F extends { type: "enum"; values: readonly (infer V)[] }
        ? V
        : F extends { type: "stringList" }
          ? readonly string[]
          : never;

/** The resolved, frozen configuration a schema describes. */
export type ConfigOf<S extends ConfigSchema> = {
  readonly [K in keyof S]: S[K] extends { default: unknown }
    ? FieldValue<S[K]>
    : S[K] extends { optional: true }
      ? FieldValue<S[K]> | undefined
      : FieldValue<S[K]>;
};

// ---------------------------------------------------------------------------------------
// Errors

/** Where a value came from. */
export type ConfigSource = "default" | "file" | "env" | "flag";

export interface ConfigIssue {
  /** The schema key, or the unknown flag/file key. */
  readonly key: string;
  readonly source: ConfigSource;
  /** `--port`, `VECRAFT_PORT`, `/etc/vecraft.json`; empty for defaults. */
  readonly origin: string;
  /** What was given, as text (secrets are not echoed). */
  readonly value: string | undefined;
  /** What was expected. */
  readonly expected: string;
}

/** Every problem found while resolving a configuration, not just the first. */
export class ConfigError extends Error {
  override name = "ConfigError";
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    const lines = issues.map(
      (i) =>
        `  ${i.key} (${i.source}${i.origin === "" ? "" : ` ${i.origin}`}): expected ${i.expected}` +
        (i.value === undefined ? "" : `, got ${JSON.stringify(i.value)}`),
    );
    super(`invalid configuration:\n${lines.join("\n")}`);
    this.issues = Object.freeze([...issues]);
  }
}

// ---------------------------------------------------------------------------------------
// Unit parsing

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses a duration into milliseconds: a bare number is ms; otherwise one or more
 * `<number><unit>` parts with units ms, s, m, h, d ("1m30s"). Returns undefined when the
 * text is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (/^\d+(\.\d+)?$/.test(s)) {
    return Number(s);
  }
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let end = 0;
  for (let match = part.exec(s); match !== null; match = part.exec(s)) {
    total += Number(match[1]) * (DURATION_UNITS[match[2] ?? ""] ?? Number.NaN);
    end = part.lastIndex;
  }
  return end === s.length && s.length > 0 && Number.isFinite(total) ? total : undefined;
}

const BYTE_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  ki: 1024,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gi: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1e12,
  tb: 1e12,
  ti: 1024 ** 4,
  tib: 1024 ** 4,
};

/**
 * Parses a size into bytes: "512", "512B", "64KiB" (1024-based), "1MB" (1000-based),
 * case-insensitive. Fractions are allowed when the result is a whole number of bytes
 * ("1.5KiB"). Returns undefined when the text is not a size.
 */
export function parseBytes(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  if (m === null) {
    return undefined;
  }
  const unit = BYTE_UNITS[(m[2] ?? "").toLowerCase()];
  if (unit === undefined) {
    return undefined;
  }
  const bytes = Number(m[1]) * unit;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

const TRUE_WORDS = new Set(["true", "1", "yes", "on"]);
const FALSE_WORDS = new Set(["false", "0", "no", "off"]);

// ---------------------------------------------------------------------------------------
// Value validation

type Parsed = { ok: true; value: unknown } | { ok: false; expected: string };

function rangeText(min: number | undefined, max: number | undefined, unit = ""): string {
  if (min !== undefined && max !== undefined) return ` in [${min}${unit}, ${max}${unit}]`;
  if (min !== undefined) return ` >= ${min}${unit}`;
  if (max !== undefined) return ` <= ${max}${unit}`;
  return "";
}

/** A human description of what a field accepts, used in errors and in `--help`. */
export function describeField(f: FieldSpec): string {
  switch (f.type) {
    case "int":
      return `an integer${rangeText(f.min, f.max)}`;
    case "number":
      return `a number${rangeText(f.min, f.max)}`;
    case "string":
      return f.nonEmpty === true ? "a non-empty string" : "a string";
    case "bool":
      return "a boolean (true/false)";
    case "duration":
      return `a duration like 50ms, 2s, 1m${rangeText(f.min, f.max, "ms")}`;
    case "bytes":
      return `a size like 4096, 64KiB, 1MiB${rangeText(f.min, f.max, " bytes")}`;
    case "enum":
      return `one of ${f.values.join(", ")}`;
    case "stringList":
      return "a comma-separated list";
  }
}

function inRange(n: number, f: { min?: number; max?: number }): boolean {
  return (f.min === undefined || n >= f.min) && (f.max === undefined || n <= f.max);
}

/**
 * Checks one raw value against its field. Strings (flags, environment) are parsed;
 * file values may also be JSON numbers, booleans and arrays where that makes sense.
 */
function parseValue(f: FieldSpec, raw: unknown): Parsed {
  const fail: Parsed = { ok: false, expected: describeField(f) };
  const ok = (value: unknown): Parsed => ({ ok: true, value });
  switch (f.type) {
    case "int": {
      const n = typeof raw === "number" ? raw : typeof raw === "string" && /^\s*[+-]?\d+\s*$/.test(raw) ? Number(raw) : NaN;
      return Number.isSafeInteger(n) && inRange(n, f) ? ok(n) : fail;
    }
    case "number": {
      const n = typeof raw === "number" ? raw : typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
      return Number.isFinite(n) && inRange(n, f) ? ok(n) : fail;
    }
    case "string":
      return typeof raw === "string" && (f.nonEmpty !== true || raw !== "") ? ok(raw) : fail;
    case "bool": {
      if (typeof raw === "boolean") return ok(raw);
      if (typeof raw !== "string") return fail;
      const w = raw.trim().toLowerCase();
      return TRUE_WORDS.has(w) ? ok(true) : FALSE_WORDS.has(w) ? ok(false) : fail;
    }
    case "duration": {
      const n = typeof raw === "number" ? raw : typeof raw === "string" ? parseDuration(raw) : undefined;
      return n !== undefined && Number.isFinite(n) && n >= 0 && inRange(n, f) ? ok(n) : fail;
    }
    case "bytes": {
      const n = typeof raw === "number" ? raw : typeof raw === "string" ? parseBytes(raw) : undefined;
      return n !== undefined && Number.isSafeInteger(n) && n >= 0 && inRange(n, f) ? ok(n) : fail;
    }
    case "enum":
      return typeof raw === "string" && f.values.includes(raw) ? ok(raw) : fail;
    case "stringList": {
      if (typeof raw === "string") {
        return ok(
          raw
            .split(",")
            .map((s) => s.trim())
            .filter((s) => s !== ""),
        );
      }
      if (Array.isArray(raw) && raw.every((x): x is string => typeof x === "string")) {
        return ok([...raw]);
      }
      return fail;
    }
  }
}

function describeRaw(f: FieldSpec, raw: unknown): string | undefined {
  if (f.secret === true) return "<secret>";
  if (typeof raw === "string") return raw;
  try {
    return JSON.stringify(raw);
  } catch {
    // Only a cyclic or bigint-holding value from a hand-built file object gets here;
    // the message then names the key without echoing the value.
    return undefined;
  }
}

function kebab(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();
}

function flagName(key: string, f: FieldSpec): string {
  return f.flag ?? kebab(key);
}

// ---------------------------------------------------------------------------------------
// defineConfig / loadConfig

/**
 * The fields of a process that registers with the meta-manager (its node id, the URL it
 * advertises, its lease), the same in every service so that the flags are too. `nodeId`
 * is the default id; `what` names the process in the help text.
 */
export function registrationFields(nodeId: string, what: string) {
  return {
    nodeId: { type: "string", default: nodeId, nonEmpty: true, env: "VECRAFT_NODE_ID", doc: `This ${what}'s node id in the catalog (unique in the cluster).` },
    advertiseUrl: { type: "string", default: "", doc: `URL other processes use to reach this ${what} (default: the listen URL).` },
    leaseTtlMs: { type: "duration", default: "10s", min: 1000, max: 600_000, doc: `Registration lease; the ${what} heartbeats at a third of it.` },
  } as const satisfies ConfigSchema;
}

/**
 * Declares a configuration schema. The value is returned as is, with its literal types
 * kept (enum values become a union), and checked: bad defaults, enum defaults outside
 * the values, and clashing flags or env names throw a `ConfigError` at startup.
 */
export function defineConfig<const S extends ConfigSchema>(schema: S): S {
  const issues: ConfigIssue[] = [];
  const flags = new Map<string, string>();
  const envs = new Map<string, string>();
  for (const [key, f] of Object.entries(schema)) {
    const flag = flagName(key, f);
    if (flag === "config" || flag === "help" || flags.has(flag)) {
      issues.push({ key, source: "default", origin: `--${flag}`, value: undefined, expected: "a flag name used once" });
    }
    flags.set(flag, key);
    if (f.env !== undefined) {
      if (envs.has(f.env)) {
        issues.push({ key, source: "default", origin: f.env, value: undefined, expected: "an env name used once" });
      }
      envs.set(f.env, key);
    }
    if (f.default !== undefined) {
      const p = parseValue(f, f.default);
      if (!p.ok) {
        issues.push({ key, source: "default", origin: "", value: describeRaw(f, f.default), expected: p.expected });
      }
    }
  }
  if (issues.length > 0) {
    throw new ConfigError(issues);
  }
  return schema;
}

export interface LoadConfigOptions {
  /** Command-line arguments without node and the script: `process.argv.slice(2)`. */
  argv?: readonly string[];
  /** Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** JSON file used when neither `--config` nor `VECRAFT_CONFIG` names one. */
  configFile?: string;
  /** Reads the config file; default `fs.readFileSync(path, "utf8")`. */
  readFile?: (path: string) => string;
}

/** The environment variable naming the JSON config file (the flag is `--config`). */
export const CONFIG_FILE_ENV = "VECRAFT_CONFIG";

interface RawValue {
  readonly raw: unknown;
  readonly source: ConfigSource;
  readonly origin: string;
}

/** True when argv asks for `--help` / `-h`; check it before `loadConfig`. */
export function isHelpRequested(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === "--") return false;
    if (a === "--help" || a === "-h") return true;
  }
  return false;
}

interface ParsedArgs {
  readonly configPath: string | undefined;
  readonly values: ReadonlyMap<string, RawValue>;
}

function parseArgv(schema: ConfigSchema, argv: readonly string[], issues: ConfigIssue[]): ParsedArgs {
  const byFlag = new Map<string, [string, FieldSpec]>();
  for (const [key, f] of Object.entries(schema)) {
    byFlag.set(flagName(key, f), [key, f]);
  }
  const values = new Map<string, RawValue>();
  let configPath: string | undefined;
  const unknown = (arg: string, expected: string): void => {
    issues.push({ key: arg, source: "flag", origin: arg, value: undefined, expected });
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (!arg.startsWith("--") || arg === "--") {
      unknown(arg, "a --flag (positional arguments are not accepted)");
      continue;
    }
    const eq = arg.indexOf("=");
    let name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let inline: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    if (name === "config") {
      const v = inline ?? argv[++i];
      if (v === undefined || v === "") unknown(arg, "--config <path>");
      else configPath = v;
      continue;
    }
    let entry = byFlag.get(name);
    if (entry === undefined && name.startsWith("no-") && inline === undefined) {
      const positive = byFlag.get(name.slice(3));
      if (positive?.[1].type === "bool") {
        entry = positive;
        name = name.slice(3);
        inline = "false";
      }
    }
    if (entry === undefined) {
      unknown(`--${name}`, "a known flag (see --help)");
      continue;
    }
    const [key, f] = entry;
    let raw: string | undefined = inline;
    if (raw === undefined) {
      if (f.type === "bool") {
        raw = "true";
      } else {
        raw = argv[i + 1];
        if (raw === undefined) {
          issues.push({ key, source: "flag", origin: `--${name}`, value: undefined, expected: `a value: ${describeField(f)}` });
          continue;
        }
        i++;
      }
    }
    // Repeated flags: the last one wins, like most CLIs.
    values.set(key, { raw, source: "flag", origin: `--${name}` });
  }
  return { configPath, values };
}

function readConfigFile(
  schema: ConfigSchema,
  path: string,
  readFile: (path: string) => string,
  issues: ConfigIssue[],
): Map<string, RawValue> {
  const values = new Map<string, RawValue>();
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFile(path));
  } catch (e) {
    const why = e instanceof SyntaxError ? "valid JSON" : "a readable file";
    const detail = e instanceof Error ? e.message : String(e);
    issues.push({ key: "<config file>", source: "file", origin: path, value: detail, expected: why });
    return values;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    issues.push({ key: "<config file>", source: "file", origin: path, value: undefined, expected: "a JSON object" });
    return values;
  }
  for (const [key, raw] of Object.entries(parsed)) {
    if (!Object.hasOwn(schema, key)) {
      issues.push({ key, source: "file", origin: path, value: undefined, expected: "a known key (unknown keys are typos)" });
      continue;
    }
    values.set(key, { raw, source: "file", origin: path });
  }
  return values;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === "object" && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) {
      deepFreeze(x);
    }
  }
  return v;
}

/**
 * Resolves a configuration: defaults < config file (JSON; `--config`, else
 * `VECRAFT_CONFIG`, else `options.configFile`) < environment < flags. Every value from
 * every source is validated (a bad value is an error even when a higher source overrides
 * it, so typos do not lie dormant), as are unknown flags and unknown file keys; all
 * problems are thrown together as one `ConfigError`. An empty environment variable counts
 * as unset. The result is deeply frozen.
 */
export function loadConfig<S extends ConfigSchema>(schema: S, options: LoadConfigOptions = {}): ConfigOf<S> {
  const env = options.env ?? process.env;
  const issues: ConfigIssue[] = [];
  const args = parseArgv(schema, options.argv ?? [], issues);
  const envConfig = env[CONFIG_FILE_ENV];
  const path = args.configPath ?? (envConfig !== undefined && envConfig !== "" ? envConfig : undefined) ?? options.configFile;
  const fileValues =
    path === undefined ? new Map<string, RawValue>() : readConfigFile(schema, path, options.readFile ?? ((p) => readFileSync(p, "utf8")), issues);

  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(schema)) {
    const candidates: RawValue[] = [];
    if (f.default !== undefined) candidates.push({ raw: f.default, source: "default", origin: "" });
    const fromFile = fileValues.get(key);
    if (fromFile !== undefined) candidates.push(fromFile);
    const fromEnv = f.env === undefined ? undefined : env[f.env];
    if (f.env !== undefined && fromEnv !== undefined && fromEnv !== "") {
      candidates.push({ raw: fromEnv, source: "env", origin: f.env });
    }
    const fromFlag = args.values.get(key);
    if (fromFlag !== undefined) candidates.push(fromFlag);

    let value: unknown;
    for (const c of candidates) {
      const p = parseValue(f, c.raw);
      if (p.ok) {
        value = p.value;
      } else {
        issues.push({ key, source: c.source, origin: c.origin, value: describeRaw(f, c.raw), expected: p.expected });
      }
    }
    if (candidates.length === 0 && f.optional !== true) {
      const where = [`--${flagName(key, f)}`, ...(f.env !== undefined ? [f.env] : []), "the config file"].join(", ");
      issues.push({ key, source: "default", origin: "", value: undefined, expected: `a value (required; set ${where})` });
    }
    out[key] = value;
  }
  if (issues.length > 0) {
    throw new ConfigError(issues);
  }
  return deepFreeze(out) as ConfigOf<S>;
}

/** A copy of `config` with secret keys replaced by "<redacted>", for logging at startup. */
export function redactConfig<S extends ConfigSchema>(schema: S, config: ConfigOf<S>): Readonly<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(schema)) {
    const v: unknown = (config as Readonly<Record<string, unknown>>)[key];
    out[key] = f.secret === true && v !== undefined ? "<redacted>" : v;
  }
  return Object.freeze(out);
}

function defaultText(f: FieldSpec): string | undefined {
  if (f.default === undefined) return undefined;
  if (f.secret === true) return "<secret>";
  if (Array.isArray(f.default)) return f.default.join(",");
  return String(f.default);
}

/** The text for `--help`: every flag, its env variable, type, default and doc. */
export function formatConfigHelp(schema: ConfigSchema, title?: string): string {
  const rows = Object.entries(schema).map(([key, f]) => {
    const flag = f.type === "bool" ? `--[no-]${flagName(key, f)}` : `--${flagName(key, f)} <${f.type}>`;
    const facts = [
      describeField(f),
      f.env !== undefined ? `env ${f.env}` : undefined,
      defaultText(f) !== undefined ? `default ${defaultText(f)}` : f.optional === true ? "optional" : "required",
    ].filter((x): x is string => x !== undefined);
    return { flag, doc: f.doc, facts: facts.join("; ") };
  });
  const width = Math.max(0, ...rows.map((r) => r.flag.length));
  const lines: string[] = [];
  if (title !== undefined) lines.push(title, "");
  lines.push("Options (precedence: defaults < config file < environment < flags):", "");
  for (const r of rows) {
    lines.push(`  ${r.flag.padEnd(width)}  ${r.doc}`, `  ${" ".repeat(width)}  (${r.facts})`);
  }
  lines.push(
    `  ${"--config <path>".padEnd(width)}  JSON file of options (keys as above); env ${CONFIG_FILE_ENV}`,
    `  ${"--help".padEnd(width)}  Print this help`,
  );
  return lines.join("\n") + "\n";
}
