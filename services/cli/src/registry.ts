// The command registry: every command is a CommandSpec; a module exports a list of them
// and commands/index.ts lists the modules. Adding a command (e.g. `vecraft serve`) is a
// new module plus one line there; dispatch, flag parsing and help come from here.
import type { VecraftClient } from "@vecraft/client";
import type { CliIO } from "./io.js";

/** A flag of a command, in the shape of node:util parseArgs plus help text. */
export interface OptionSpec {
  type: "string" | "boolean";
  /** May be given several times (`--field a:int --field b:string`). */
  multiple?: boolean;
  short?: string;
  /** Placeholder in help, e.g. "N" for `--batch N`. */
  value?: string;
  help: string;
}

export interface ArgSpec {
  /** Upper case in help: NAME, FILE, ID. */
  name: string;
  optional?: boolean;
  /** Takes every remaining positional (at least one unless optional). */
  variadic?: boolean;
}

/** What a command's options parse to; read it with the helpers in args.ts. */
export interface ParsedArgs {
  readonly values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;
  readonly positionals: readonly string[];
}

/** The global flags, resolved with the environment. */
export interface GlobalOptions {
  readonly url: string;
  readonly apiKey: string | undefined;
  readonly json: boolean;
  readonly verbose: boolean;
}

export interface CommandContext {
  readonly io: CliIO;
  readonly globals: GlobalOptions;
  /** The SDK client, created on first use from the global flags. */
  client(): VecraftClient;
  /** Aborted on Ctrl-C. */
  readonly signal: AbortSignal;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Milliseconds, for rates and progress. */
  now(): number;
  /** Asks the user a question on the terminal; undefined when stdin is not interactive. */
  readonly prompt: ((question: string) => Promise<string>) | undefined;
  /** Minimum time between two plain (non-TTY) progress lines. */
  readonly progressIntervalMs: number;
  /** Transient failures the SDK retried so far. */
  retries(): number;
}

export interface CommandSpec {
  /** The words that name it: ["collections", "create"], ["import"]. */
  readonly path: readonly string[];
  /** One line for the command list. */
  readonly summary: string;
  /** Longer help, printed under the usage line. */
  readonly description?: string;
  readonly args?: readonly ArgSpec[];
  readonly options?: Readonly<Record<string, OptionSpec>>;
  /** Shown in the usage line, e.g. "--dimension N --metric cosine|l2|ip". */
  readonly usageHint?: string;
  readonly examples?: readonly string[];
  /**
   * The words after its path reach run() as they are, in `positionals`: no flag parsing and
   * no --help of its own (`vecraft serve ROLE FLAGS...` hands the flags to a service).
   */
  readonly passThrough?: boolean;
  /** Returns the exit code (default 0). Throws UsageError, InputError, ConnectError, ... */
  run(ctx: CommandContext, args: ParsedArgs): Promise<number | void>;
}

/** The global flags every command accepts. */
export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  url: { type: "string", value: "URL", help: "the gateway (default http://127.0.0.1:8080, env VECRAFT_URL)" },
  "api-key": { type: "string", value: "KEY", help: "API key (env VECRAFT_API_KEY)" },
  json: { type: "boolean", help: "print JSON instead of tables" },
  consistency: {
    type: "string",
    value: "LEVEL",
    help: "reads: eventual, bounded, session or strong (default: the server's, bounded 1 s)",
  },
  "staleness-ms": { type: "string", value: "MS", help: "staleness bound of bounded reads" },
  "session-token": {
    type: "string",
    value: "TOKEN",
    help: "session token to start from, for session reads (env VECRAFT_SESSION_TOKEN)",
  },
  protocol: { type: "string", value: "P", help: "grpc (default, HTTP/2) or connect (JSON over HTTP/1.1)" },
  timeout: { type: "string", value: "DUR", help: "deadline of each call attempt (default 30s)" },
  "retry-budget": { type: "string", value: "DUR", help: "time spent retrying transient failures (default 10s)" },
  verbose: { type: "boolean", short: "v", help: "report retries on stderr" },
  help: { type: "boolean", short: "h", help: "show help" },
};

function flagLabel(name: string, spec: OptionSpec): string {
  const long = `--${name}${spec.type === "string" ? ` ${spec.value ?? "VALUE"}` : ""}`;
  return spec.short !== undefined ? `-${spec.short}, ${long}` : long;
}

function optionLines(options: Readonly<Record<string, OptionSpec>>): string[] {
  const rows = Object.entries(options).map(([name, spec]) => [flagLabel(name, spec), spec.help + (spec.multiple === true ? " (repeatable)" : "")] as const);
  const width = Math.max(0, ...rows.map(([l]) => l.length));
  return rows.map(([l, h]) => `  ${l.padEnd(width)}  ${h}`);
}

export function usageLine(spec: CommandSpec): string {
  const args = (spec.args ?? []).map((a) => {
    const word = a.variadic === true ? `${a.name}...` : a.name;
    return a.optional === true ? `[${word}]` : word;
  });
  return ["vecraft", ...spec.path, ...args, ...(spec.usageHint !== undefined ? [spec.usageHint] : []), "[options]"].join(" ");
}

export function commandHelp(spec: CommandSpec): string {
  const lines = [`Usage: ${usageLine(spec)}`, "", spec.description ?? spec.summary];
  if (spec.options !== undefined && Object.keys(spec.options).length > 0) {
    lines.push("", "Options:", ...optionLines(spec.options));
  }
  lines.push("", "Global options:", ...optionLines(GLOBAL_OPTIONS));
  if (spec.examples !== undefined && spec.examples.length > 0) {
    lines.push("", "Examples:", ...spec.examples.map((e) => `  ${e}`));
  }
  return lines.join("\n");
}

function commandList(commands: readonly CommandSpec[]): string[] {
  const rows = commands.map((c) => [c.path.join(" "), c.summary] as const);
  const width = Math.max(0, ...rows.map(([n]) => n.length));
  return rows.map(([n, s]) => `  ${n.padEnd(width)}  ${s}`);
}

export function mainHelp(commands: readonly CommandSpec[]): string {
  return [
    "vecraft: the command line of Vecraft, a vector database with a journal",
    "",
    "Usage: vecraft [global options] <command> [options]",
    "",
    "Commands:",
    ...commandList(commands),
    "",
    "Global options:",
    ...optionLines(GLOBAL_OPTIONS),
    "",
    "Run 'vecraft <command> --help' for the options of a command.",
    "Exit codes: 0 success, 1 failure (server error, rejected data), 2 usage error, 130 interrupted.",
  ].join("\n");
}

export function groupHelp(group: string, commands: readonly CommandSpec[]): string {
  const members = commands.filter((c) => c.path[0] === group);
  return [
    `Usage: vecraft ${group} <command> [options]`,
    "",
    "Commands:",
    ...commandList(members),
    "",
    `Run 'vecraft ${group} <command> --help' for details.`,
  ].join("\n");
}

/** Names of the global flags that take a value (to skip their values while finding the command). */
export function valueFlags(options: Readonly<Record<string, OptionSpec>>): Set<string> {
  const out = new Set<string>();
  for (const [name, spec] of Object.entries(options)) {
    if (spec.type === "string") {
      out.add(`--${name}`);
      if (spec.short !== undefined) out.add(`-${spec.short}`);
    }
  }
  return out;
}
