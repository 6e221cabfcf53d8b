import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Machine-readable facts about an error (a leader hint, an item index, a field name).
 * Scalars only, because they travel as response metadata (headers or gRPC trailers).
 */
export type ErrorDetails = Readonly<Record<string, string | number | boolean>>;

export interface VecraftErrorOptions {
  /** The lower-level error this one explains. */
  cause?: unknown;
  /** Facts a client can act on; sent as `vecraft-<kebab-key>` metadata. */
  details?: ErrorDetails;
  /** Overrides the class's default retryability. */
  retryable?: boolean;
}

/** Prefix of the metadata keys that carry `VecraftError.details` to the client. */
export const ERROR_DETAIL_HEADER_PREFIX = "vecraft-";

/** Metadata key of the leader hint on a `FailedPrecondition` error. */
export const LEADER_HINT_HEADER = "vecraft-leader-hint";

// A brand instead of relying on `instanceof` alone: two copies of this package in one
// process (a monorepo hazard) would otherwise not recognise each other's errors.
const kVecraftError = Symbol.for("@vecraft/common/VecraftError");

/**
 * The root of Vecraft's internal error hierarchy. Domain code throws these (never a bare
 * `ConnectError`, which belongs to the RPC boundary); `toConnectError` maps them once.
 * Each carries the Connect `Code` it becomes and whether retrying can help.
 */
export class VecraftError extends Error {
  override name = "VecraftError";
  readonly code: Code;
  readonly retryable: boolean;
  readonly details: ErrorDetails | undefined;

  constructor(message: string, code: Code, options: VecraftErrorOptions = {}, defaultRetryable = false) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? defaultRetryable;
    this.details = options.details === undefined ? undefined : Object.freeze({ ...options.details });
    Object.defineProperty(this, kVecraftError, { value: true });
  }
}

/** True for a `VecraftError` from any copy of this package. */
export function isVecraftError(e: unknown): e is VecraftError {
  return e instanceof VecraftError || (typeof e === "object" && e !== null && kVecraftError in e);
}

/** Bad input, invalid regardless of the system's state. */
export class InvalidArgumentError extends VecraftError {
  override name = "InvalidArgumentError";
  constructor(message: string, options?: VecraftErrorOptions) {
    super(message, Code.InvalidArgument, options);
  }
}

/** A collection, record, partition, ... that does not exist. */
export class NotFoundError extends VecraftError {
  override name = "NotFoundError";
  constructor(message: string, options?: VecraftErrorOptions) {
    super(message, Code.NotFound, options);
  }
}

export class AlreadyExistsError extends VecraftError {
  override name = "AlreadyExistsError";
  constructor(message: string, options?: VecraftErrorOptions) {
    super(message, Code.AlreadyExists, options);
  }
}

export interface FailedPreconditionErrorOptions extends VecraftErrorOptions {
  /** Where the caller should go instead (the current leader or owner), if known. */
  leaderHint?: string;
}

/** Valid input sent to the wrong place or at the wrong time: not the leader, wrong owner. */
export class FailedPreconditionError extends VecraftError {
  override name = "FailedPreconditionError";
  readonly leaderHint: string | undefined;
  constructor(message: string, options: FailedPreconditionErrorOptions = {}) {
    const { leaderHint, ...rest } = options;
    super(message, Code.FailedPrecondition, {
      ...rest,
      ...(leaderHint !== undefined ? { details: { ...rest.details, leaderHint } } : {}),
    });
    this.leaderHint = leaderHint;
  }
}

/**
 * A lost compare-and-set or an epoch conflict. Not retryable by default: retrying is
 * only safe when the caller knows the operation is idempotent, so it opts in.
 */
export class AbortedError extends VecraftError {
  override name = "AbortedError";
  constructor(message: string, options?: VecraftErrorOptions) {
    super(message, Code.Aborted, options);
  }
}

/** A peer is down or an election is running: back off and retry. */
export class UnavailableError extends VecraftError {
  override name = "UnavailableError";
  constructor(message: string, options?: VecraftErrorOptions) {
    super(message, Code.Unavailable, options, true);
  }
}

/** A queue is full or a rate limit was hit: back off and retry. */
export class ResourceExhaustedError extends VecraftError {
  override name = "ResourceExhaustedError";
  constructor(message: string, options?: VecraftErrorOptions) {
    super(message, Code.ResourceExhausted, options, true);
  }
}

export class DeadlineExceededError extends VecraftError {
  override name = "DeadlineExceededError";
  constructor(message: string, options?: VecraftErrorOptions) {
    super(message, Code.DeadlineExceeded, options);
  }
}

/** A position outside the valid range, e.g. an offset past the end of a log. */
export class OutOfRangeError extends VecraftError {
  override name = "OutOfRangeError";
  constructor(message: string, options?: VecraftErrorOptions) {
    super(message, Code.OutOfRange, options);
  }
}

/** A checksum mismatch or a corrupt record: unrecoverable without operator help. */
export class DataLossError extends VecraftError {
  override name = "DataLossError";
  constructor(message: string, options?: VecraftErrorOptions) {
    super(message, Code.DataLoss, options);
  }
}

/** A broken invariant: a bug. */
export class InternalError extends VecraftError {
  override name = "InternalError";
  constructor(message: string, options?: VecraftErrorOptions) {
    super(message, Code.Internal, options);
  }
}

/**
 * Walks the `cause` chain from `e` outwards-in, stopping at non-errors and at cycles.
 * The first element is `e` itself when it is an `Error`.
 */
export function errorChain(e: unknown): Error[] {
  const chain: Error[] = [];
  let current: unknown = e;
  while (current instanceof Error && !chain.includes(current)) {
    chain.push(current);
    current = current.cause;
  }
  return chain;
}

/** The string `code` of a Node system error or a better-sqlite3 `SqliteError`. */
function stringCode(e: Error): string | undefined {
  const code = (e as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

interface Classification {
  readonly code: Code;
  readonly message: string;
  readonly retryable: boolean;
}

const UNAVAILABLE_SYSCALL_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * Classifies one link of a cause chain that is not a Vecraft or Connect error. Messages
 * are generic on purpose: the raw ones carry paths and addresses that clients should
 * not see (the original stays in `cause` for the server's logs).
 */
function classifyForeign(e: Error): Classification | undefined {
  const code = stringCode(e);
  if (code !== undefined) {
    if (code === "ENOSPC" || code === "EDQUOT") {
      return { code: Code.ResourceExhausted, message: "storage is full", retryable: false };
    }
    if (UNAVAILABLE_SYSCALL_CODES.has(code)) {
      return { code: Code.Unavailable, message: "a dependency is unavailable", retryable: true };
    }
    if (code === "EIO") {
      return { code: Code.Internal, message: "storage i/o error", retryable: false };
    }
    // better-sqlite3 uses extended codes such as SQLITE_BUSY_SNAPSHOT.
    if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
      return { code: Code.Unavailable, message: "database is busy", retryable: true };
    }
    if (code === "SQLITE_FULL") {
      return { code: Code.ResourceExhausted, message: "storage is full", retryable: false };
    }
    if (code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB") {
      return { code: Code.DataLoss, message: "database is corrupt", retryable: false };
    }
  }
  if (e.name === "TimeoutError") {
    return { code: Code.DeadlineExceeded, message: "the operation timed out", retryable: false };
  }
  if (e.name === "AbortError") {
    return { code: Code.Canceled, message: "the operation was canceled", retryable: false };
  }
  return undefined;
}

const RETRYABLE_CONNECT_CODES: ReadonlySet<Code> = new Set([Code.Unavailable, Code.ResourceExhausted]);

function classify(e: unknown): { link: Error; c: Classification } | undefined {
  for (const link of errorChain(e)) {
    if (isVecraftError(link)) {
      return { link, c: { code: link.code, message: link.message, retryable: link.retryable } };
    }
    if (link instanceof ConnectError) {
      return {
        link,
        c: { code: link.code, message: link.rawMessage, retryable: RETRYABLE_CONNECT_CODES.has(link.code) },
      };
    }
    const c = classifyForeign(link);
    if (c !== undefined) {
      return { link, c };
    }
  }
  return undefined;
}

function kebab(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1-$2").replace(/[^A-Za-z0-9-]/g, "-").toLowerCase();
}

/** Header values cannot hold control characters; details are short scalars anyway. */
function headerValue(v: string | number | boolean): string {
  // eslint-disable-next-line no-control-regex
  return String(v).replace(/[\u0000-\u001f\u007f]/g, " ");
}

function detailsMetadata(details: ErrorDetails | undefined): Headers | undefined {
  if (details === undefined) {
    return undefined;
  }
  const h = new Headers();
  for (const [k, v] of Object.entries(details)) {
    h.set(ERROR_DETAIL_HEADER_PREFIX + kebab(k), headerValue(v));
  }
  return h;
}

/**
 * Maps anything thrown to the single error type of the RPC boundary. Model:
 * connect-node `node-error.ts`.
 *
 * - a `ConnectError` passes through unchanged;
 * - otherwise the `cause` chain is walked and the first link that says something decides:
 *   a `VecraftError` keeps its code and message (details become `vecraft-*` metadata), a
 *   wrapped `ConnectError` keeps its code, Node and SQLite error codes map to
 *   ResourceExhausted / Unavailable / Internal / DataLoss, `TimeoutError` to
 *   DeadlineExceeded and `AbortError` to Canceled;
 * - anything else is `Internal` with a generic message. The original error is always the
 *   `cause`, for the server's logs.
 */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) {
    return e;
  }
  const found = classify(e);
  if (found === undefined) {
    return new ConnectError("internal error", Code.Internal, undefined, undefined, e);
  }
  const { link, c } = found;
  const metadata = isVecraftError(link) ? detailsMetadata(link.details) : link instanceof ConnectError ? link.metadata : undefined;
  return new ConnectError(c.message, c.code, metadata, undefined, e);
}

/**
 * Whether retrying the failed operation can succeed: a `VecraftError` says so itself; a
 * `ConnectError` is retryable when Unavailable or ResourceExhausted; connection failures
 * and SQLite busy are retryable; everything else (including aborts) is not.
 */
export function isRetryable(e: unknown): boolean {
  return classify(e)?.c.retryable ?? false;
}

/**
 * Reads the `vecraft-*` details a server attached to a `ConnectError` (keys without the
 * prefix, kebab-case), e.g. `{ "leader-hint": "journal-1:7001" }`.
 */
export function errorDetailsOf(e: ConnectError): Record<string, string> {
  const out: Record<string, string> = {};
  e.metadata.forEach((value, key) => {
    if (key.startsWith(ERROR_DETAIL_HEADER_PREFIX)) {
      out[key.slice(ERROR_DETAIL_HEADER_PREFIX.length)] = value;
    }
  });
  return out;
}
