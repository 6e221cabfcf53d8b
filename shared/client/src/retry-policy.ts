import { Code, ConnectError } from "@connectrpc/connect";
import { DEFAULT_BACKOFF, DEFAULT_RETRY_BUDGET_MS, errorChain } from "@vecraft/common";

/** What the client passes to `onRetry` before it waits and tries again. */
export interface ClientRetryInfo {
  /** The RPC, e.g. "Upsert". */
  method: string;
  /** The attempt that failed, from 1. */
  attempt: number;
  /** The wait before the next attempt. */
  delayMs: number;
  error: ConnectError;
  /** The idempotency key every attempt of a write carries. */
  requestId?: string;
}

/** Retry options; every field is optional. Pass `retry: false` to the client for none. */
export interface RetryPolicy {
  /** Wall-clock budget for one call, attempts and waits included. Default 30 s. */
  budgetMs?: number;
  /** The first wait before jitter. Default 100 ms. */
  initialMs?: number;
  /** The cap on any wait. Default 5 s. */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  multiplier?: number;
  /** Fraction in [0, 1] or "full". Default 0.2. */
  jitter?: number | "full";
  /** Total attempts including the first. Default unlimited (the budget bounds them). */
  maxAttempts?: number;
  /** Called before each wait, e.g. to log. */
  onRetry?: (info: ClientRetryInfo) => void;
  /** Uniform random in [0, 1); injected by tests. */
  random?: () => number;
}

export interface ResolvedRetryPolicy {
  readonly budgetMs: number;
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
  readonly jitter: number | "full";
  readonly maxAttempts: number;
  readonly onRetry: ((info: ClientRetryInfo) => void) | undefined;
  readonly random: (() => number) | undefined;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new RangeError(`invalid retry option: ${what}`);
}

/** Validates the options once, at client creation, into a frozen policy. */
export function resolveRetryPolicy(policy: RetryPolicy | false | undefined): ResolvedRetryPolicy {
  const p = policy === false ? { maxAttempts: 1 } : (policy ?? {});
  const initialMs = p.initialMs ?? DEFAULT_BACKOFF.initialMs;
  const resolved: ResolvedRetryPolicy = {
    budgetMs: p.budgetMs ?? DEFAULT_RETRY_BUDGET_MS,
    initialMs,
    maxMs: p.maxMs ?? Math.max(DEFAULT_BACKOFF.maxMs, initialMs),
    multiplier: p.multiplier ?? DEFAULT_BACKOFF.multiplier,
    jitter: p.jitter ?? DEFAULT_BACKOFF.jitter,
    maxAttempts: p.maxAttempts ?? Number.POSITIVE_INFINITY,
    onRetry: p.onRetry,
    random: p.random,
  };
  check(Number.isFinite(resolved.budgetMs) && resolved.budgetMs >= 0, `budgetMs must be >= 0, got ${resolved.budgetMs}`);
  check(Number.isFinite(initialMs) && initialMs >= 0, `initialMs must be >= 0, got ${initialMs}`);
  check(Number.isFinite(resolved.maxMs) && resolved.maxMs >= initialMs, `maxMs must be >= initialMs, got ${resolved.maxMs}`);
  check(Number.isFinite(resolved.multiplier) && resolved.multiplier >= 1, `multiplier must be >= 1, got ${resolved.multiplier}`);
  check(
    resolved.jitter === "full" || (Number.isFinite(resolved.jitter) && resolved.jitter >= 0 && resolved.jitter <= 1),
    `jitter must be in [0, 1] or "full", got ${String(resolved.jitter)}`,
  );
  check(resolved.maxAttempts >= 1, `maxAttempts must be >= 1, got ${resolved.maxAttempts}`);
  return Object.freeze(resolved);
}

/**
 * Node error codes that mean the connection failed or broke. connect-node reports some of
 * them as Unavailable, but a reset mid-call surfaces as Aborted or Internal with the Node
 * error as its cause, which is why the cause chain is read.
 */
const CONNECTION_ERROR_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_STREAM_CANCEL",
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_HTTP2_PING_CANCEL",
  "UND_ERR_SOCKET",
]);

/**
 * True when the error, or any error in its cause chain, is a broken or refused
 * connection, or an HTTP/2 stream the server refused (REFUSED_STREAM: it did not process
 * it, e.g. because it was shutting the connection down).
 */
export function isConnectionError(e: unknown): boolean {
  return errorChain(e).some((link) => {
    const code = (link as { code?: unknown }).code;
    if (typeof code !== "string") return false;
    if (CONNECTION_ERROR_CODES.has(code)) return true;
    return code === "ERR_HTTP2_STREAM_ERROR" && link.message.includes("REFUSED_STREAM");
  });
}

/**
 * Reads have no side effects: retry them when the server says Unavailable (a replica
 * down, an election) or the connection broke. Never on InvalidArgument, NotFound,
 * DeadlineExceeded (the read's own deadline passed) and the rest.
 */
export function isRetryableRead(e: unknown): boolean {
  if (e instanceof ConnectError && e.code === Code.Unavailable) return true;
  return isConnectionError(e);
}

/**
 * Writes carry a request id, so a retry is never applied twice: retry them also when the
 * deadline passed, because the outcome is then unknown and the retry settles it.
 */
export function isRetryableWrite(e: unknown): boolean {
  if (e instanceof ConnectError && e.code === Code.DeadlineExceeded) return true;
  return isRetryableRead(e);
}
