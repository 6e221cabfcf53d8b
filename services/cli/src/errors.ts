import { Code } from "@connectrpc/connect";
import type { ConnectError } from "@connectrpc/connect";
import { codeLabel, errorChain } from "@vecraft/common";

/** Exit codes, documented in the README. */
export const EXIT_OK = 0;
/** The operation failed: a server error, a rejected batch, an unreadable input file. */
export const EXIT_FAILURE = 1;
/** The command line was wrong: unknown command or flag, missing or malformed argument. */
export const EXIT_USAGE = 2;
/** Interrupted (SIGINT), as shells report 128 + 2. */
export const EXIT_INTERRUPTED = 130;

/** A mistake on the command line; exits 2 with a pointer to `--help`. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Bad or unreadable input data (an import file, a vector file); exits 1. */
export class InputError extends Error {
  override name = "InputError";
}

/** A failure already explained to the user; exits with `exitCode` and prints `message`. */
export class CommandFailed extends Error {
  override name = "CommandFailed";
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
  ) {
    super(message);
  }
}

function nodeCode(e: unknown): string | undefined {
  for (const link of errorChain(e)) {
    const code = (link as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

/**
 * One line for a failed RPC: the server's message and its code, or, when the server could
 * not be reached, what to check.
 */
export function describeRpcError(e: ConnectError, url: string): string {
  const sys = nodeCode(e);
  if (sys === "ECONNREFUSED") {
    return `cannot connect to ${url}: connection refused (is Vecraft running there? set --url or VECRAFT_URL)`;
  }
  if (sys === "ENOTFOUND" || sys === "EAI_AGAIN") {
    return `cannot resolve the host of ${url} (set --url or VECRAFT_URL)`;
  }
  if (e.code === Code.Unauthenticated) {
    return `${e.rawMessage || "not authenticated"} (set --api-key or VECRAFT_API_KEY) [unauthenticated]`;
  }
  return `${e.rawMessage || "request failed"} [${codeLabel(e.code)}]`;
}
