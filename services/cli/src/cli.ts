// Dispatch: find the command named by the leading words, parse its flags together with
// the global ones, build the context, run it, and turn what it throws into a one-line
// message and an exit code.
import { parseArgs } from "node:util";
import type { ParseArgsConfig } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { createVecraftClient, parseConsistencyLevel } from "@vecraft/client";
import { codeLabel } from "@vecraft/common";
import type { ConsistencyInput, VecraftClient, VecraftClientOptions } from "@vecraft/client";
import { durationOpt, intOpt, stringOpt } from "./args.js";
import { DEFAULT_COMMANDS } from "./commands/index.js";
import { CommandFailed, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, InputError, UsageError, describeRpcError } from "./errors.js";
import { createIO } from "./io.js";
import type { CliIO, Writer } from "./io.js";
import { GLOBAL_OPTIONS, commandHelp, groupHelp, mainHelp, usageLine, valueFlags } from "./registry.js";
import type { CommandContext, CommandSpec, GlobalOptions, OptionSpec, ParsedArgs } from "./registry.js";

export const DEFAULT_URL = "http://127.0.0.1:8080";
/** The CLI gives up on an unreachable server sooner than the SDK's 30 s default. */
export const DEFAULT_RETRY_BUDGET_MS = 10_000;
/** Plain progress lines (not a terminal) at most this often. */
export const DEFAULT_PROGRESS_INTERVAL_MS = 2_000;

export interface CliDeps {
  stdout: Writer;
  stderr: Writer;
  /** Default `{}`; main.ts passes `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Aborted on Ctrl-C. */
  signal?: AbortSignal;
  /** How the SDK client is made; tests inject a transport here. */
  createClient?: (options: VecraftClientOptions) => VecraftClient;
  /** Interactive question (confirmations); absent when stdin is not a terminal. */
  prompt?: (question: string) => Promise<string>;
  /** Milliseconds for rates and progress; default `performance.now`. */
  now?: () => number;
  progressIntervalMs?: number;
  /** The commands; default DEFAULT_COMMANDS. */
  commands?: readonly CommandSpec[];
}

interface Located {
  spec: CommandSpec | undefined;
  /** The words matched (a command path, or a group's first word). */
  words: string[];
  /** argv without the matched words. */
  rest: string[];
}

/** Finds the command named by the first positional words, skipping global flags. */
function locate(argv: readonly string[], commands: readonly CommandSpec[]): Located {
  const globalValues = valueFlags(GLOBAL_OPTIONS);
  const words: string[] = [];
  const taken = new Set<number>();
  let spec: CommandSpec | undefined;
  for (let i = 0; i < argv.length; i++) {
    const t = argv[i]!;
    if (t === "--") break;
    if (t.startsWith("-") && t !== "-") {
      if (globalValues.has(t)) i++;
      continue;
    }
    const candidate = [...words, t];
    const extends_ = commands.filter((c) => candidate.every((w, k) => c.path[k] === w));
    if (extends_.length === 0) break;
    words.push(t);
    taken.add(i);
    const exact = extends_.find((c) => c.path.length === candidate.length);
    if (exact !== undefined) {
      spec = exact;
      if (extends_.length === 1) break;
    }
  }
  return { spec, words, rest: argv.filter((_, i) => !taken.has(i)) };
}

function parse(spec: CommandSpec, argv: readonly string[]): ParsedArgs {
  const options: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS, ...spec.options };
  const config: ParseArgsConfig["options"] = {};
  for (const [name, o] of Object.entries(options)) {
    config[name] = { type: o.type, ...(o.multiple === true ? { multiple: true } : {}), ...(o.short !== undefined ? { short: o.short } : {}) };
  }
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options: config, allowPositionals: true, strict: true });
    return { values, positionals };
  } catch (e) {
    // node:util's messages name the flag; drop its advice about `--`, which does not apply.
    const message = e instanceof Error ? e.message.replace(/\. To specify a positional argument.*$/s, "") : String(e);
    throw new UsageError(message);
  }
}

function checkPositionals(spec: CommandSpec, args: ParsedArgs): void {
  const specs = spec.args ?? [];
  const n = args.positionals.length;
  const required = specs.filter((a) => a.optional !== true).length;
  const variadic = specs.some((a) => a.variadic === true);
  if (n < required) {
    const missing = specs.filter((a) => a.optional !== true)[n];
    throw new UsageError(`missing ${missing?.name ?? "argument"}`);
  }
  if (!variadic && n > specs.length) {
    throw new UsageError(`unexpected argument ${JSON.stringify(args.positionals[specs.length])}`);
  }
}

function resolveConsistency(args: ParsedArgs): ConsistencyInput | undefined {
  const text = stringOpt(args, "consistency");
  const stalenessMs = intOpt(args, "staleness-ms", { min: 0, max: 0xffffffff });
  if (text === undefined) {
    return stalenessMs === undefined ? undefined : { level: "bounded", stalenessMs };
  }
  const level = parseConsistencyLevel(text);
  if (level === undefined) throw new UsageError(`--consistency must be eventual, bounded, session or strong, got ${JSON.stringify(text)}`);
  if (stalenessMs !== undefined) {
    if (level !== "bounded") throw new UsageError("--staleness-ms applies to --consistency bounded only");
    return { level, stalenessMs };
  }
  return level;
}

interface Runtime {
  client: VecraftClient | undefined;
  retries: number;
  /** The gateway URL, once the flags are resolved (for error messages). */
  url: string;
}

function buildContext(args: ParsedArgs, io: CliIO, deps: CliDeps, runtime: Runtime, signal: AbortSignal): CommandContext {
  const env = deps.env ?? {};
  const url = stringOpt(args, "url") ?? env["VECRAFT_URL"] ?? DEFAULT_URL;
  const apiKey = stringOpt(args, "api-key") ?? (env["VECRAFT_API_KEY"] || undefined);
  const sessionToken = stringOpt(args, "session-token") ?? (env["VECRAFT_SESSION_TOKEN"] || undefined);
  const protocol = stringOpt(args, "protocol") ?? "grpc";
  if (protocol !== "grpc" && protocol !== "connect") throw new UsageError(`--protocol must be grpc or connect, got ${JSON.stringify(protocol)}`);
  const timeoutMs = durationOpt(args, "timeout");
  const budgetMs = durationOpt(args, "retry-budget") ?? DEFAULT_RETRY_BUDGET_MS;
  const consistency = resolveConsistency(args);
  runtime.url = url;
  const globals: GlobalOptions = { url, apiKey, json: args.values["json"] === true, verbose: args.values["verbose"] === true };
  try {
    new URL(url);
  } catch {
    throw new UsageError(`--url is not a URL: ${JSON.stringify(url)}`);
  }
  const make = deps.createClient ?? createVecraftClient;
  return {
    io,
    globals,
    env,
    signal,
    prompt: deps.prompt,
    progressIntervalMs: deps.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS,
    now: deps.now ?? ((): number => performance.now()),
    retries: () => runtime.retries,
    client: () => {
      runtime.client ??= make({
        baseUrl: url,
        protocol,
        ...(apiKey !== undefined ? { apiKey } : {}),
        ...(sessionToken !== undefined ? { sessionToken } : {}),
        ...(consistency !== undefined ? { consistency } : {}),
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        retry: {
          budgetMs,
          onRetry: (info) => {
            runtime.retries++;
            if (globals.verbose) {
              io.err(
                `retrying ${info.method} (attempt ${info.attempt} failed: ${info.error.rawMessage} [${codeLabel(info.error.code)}]) in ${info.delayMs} ms`,
              );
            }
          },
        },
      });
      return runtime.client;
    },
  };
}

/**
 * Runs the `vecraft` command line in-process and returns the exit code. Output goes to
 * the writers in `deps`; nothing here touches `process`.
 */
export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  const io = createIO(deps.stdout, deps.stderr);
  const commands = deps.commands ?? DEFAULT_COMMANDS;
  const signal = deps.signal ?? new AbortController().signal;
  const { spec, words, rest } = locate(argv, commands);
  const wantsHelp = rest.includes("--help") || rest.includes("-h");

  if (spec === undefined) {
    if (words.length > 0) {
      // A group without its subcommand: `vecraft collections`.
      const help = groupHelp(words[0]!, commands);
      if (wantsHelp) {
        io.out(help);
        return EXIT_OK;
      }
      io.err(help);
      return EXIT_USAGE;
    }
    if (argv[0] === "help") return runCli([...argv.slice(1), "--help"], deps);
    const first = argv.find((t) => !t.startsWith("-"));
    if (first !== undefined && !wantsHelp) {
      io.err(`vecraft: unknown command ${JSON.stringify(first)}`);
      io.err("Run 'vecraft --help' for the list of commands.");
      return EXIT_USAGE;
    }
    if (wantsHelp) {
      io.out(mainHelp(commands));
      return EXIT_OK;
    }
    io.err(mainHelp(commands));
    return EXIT_USAGE;
  }
  const passThrough = spec.passThrough === true;
  if (wantsHelp && !passThrough) {
    io.out(commandHelp(spec));
    return EXIT_OK;
  }

  const name = spec.path.join(" ");
  const runtime: Runtime = { client: undefined, retries: 0, url: deps.env?.["VECRAFT_URL"] ?? DEFAULT_URL };
  try {
    const args = passThrough ? { values: {}, positionals: rest } : parse(spec, rest);
    if (!passThrough) checkPositionals(spec, args);
    const ctx = buildContext(args, io, deps, runtime, signal);
    const code = await spec.run(ctx, args);
    return code ?? EXIT_OK;
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`vecraft ${name}: ${e.message}`);
      io.err(`Usage: ${usageLine(spec)}`);
      io.err(`Run 'vecraft ${name} --help' for details.`);
      return EXIT_USAGE;
    }
    if (signal.aborted) {
      io.err(`vecraft ${name}: interrupted`);
      return EXIT_INTERRUPTED;
    }
    if (e instanceof CommandFailed) {
      io.err(`vecraft ${name}: ${e.message}`);
      return e.exitCode;
    }
    if (e instanceof InputError) {
      io.err(`vecraft ${name}: ${e.message}`);
      return EXIT_FAILURE;
    }
    if (e instanceof ConnectError) {
      io.err(`vecraft ${name}: ${describeRpcError(e, runtime.url)}`);
      return e.code === Code.Canceled && signal.aborted ? EXIT_INTERRUPTED : EXIT_FAILURE;
    }
    io.err(`vecraft ${name}: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_FAILURE;
  } finally {
    runtime.client?.close();
  }
}
