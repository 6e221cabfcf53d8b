// What domain code knows about the request it serves (no Connect handler types), and how
// it calls the internal services: the client's deadline and cancellation go downstream,
// and errors coming back are cleaned before they reach the public API.
import { randomBytes } from "node:crypto";
import { Code, ConnectError, type CallOptions } from "@connectrpc/connect";
import { ERROR_DETAIL_HEADER_PREFIX } from "@vecraft/common";
import type { Caller } from "./auth.js";

/** Headers the gateway adds to internal calls, so that the services can log and journal them. */
export const REQUEST_ID_HEADER = "x-vecraft-request-id";
export const PRINCIPAL_HEADER = "x-vecraft-principal";
export const TRACE_ID_HEADER = "x-vecraft-trace-id";

export interface Scope {
  /** Fires when the client goes away, the deadline passes, or the server shuts down. */
  readonly signal: AbortSignal;
  /** The time left of the client's deadline, if it set one. */
  timeoutMs(): number | undefined;
  readonly caller: Caller;
  /** The W3C trace id of the request (from `traceparent`), or one made up for it. */
  readonly traceId: string;
}

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;
const TRACE_ID = /^[0-9A-Za-z._-]{1,64}$/;

/** The trace id of a request: W3C `traceparent`, else `x-trace-id`, else a new random one. */
export function traceIdOf(headers: Headers): string {
  const tp = TRACEPARENT.exec(headers.get("traceparent")?.trim().toLowerCase() ?? "");
  if (tp?.[1] !== undefined && !/^0+$/.test(tp[1])) return tp[1];
  const x = headers.get("x-trace-id")?.trim();
  if (x !== undefined && TRACE_ID.test(x)) return x;
  return randomBytes(16).toString("hex");
}

/**
 * Options for an internal call made on behalf of `scope`: its signal, the client's
 * remaining deadline (or `defaultTimeoutMs` when it set none), and extra headers.
 */
export function callOptions(scope: Scope, defaultTimeoutMs: number, headers?: Record<string, string>): CallOptions {
  const remaining = scope.timeoutMs();
  const timeoutMs = Math.max(1, Math.floor(remaining ?? defaultTimeoutMs));
  return headers === undefined ? { signal: scope.signal, timeoutMs } : { signal: scope.signal, timeoutMs, headers };
}

/**
 * The error to pass on when an internal call to `service` failed. A ConnectError keeps its
 * code and message, but only its `vecraft-*` metadata (not the internal response's
 * headers); UNAVAILABLE and DEADLINE_EXCEEDED say which service it was. Anything else is
 * returned as is, for toConnectError to classify.
 */
export function downstreamError(service: string, e: unknown): unknown {
  if (!(e instanceof ConnectError)) return e;
  const metadata = new Headers();
  e.metadata.forEach((value, key) => {
    if (key.startsWith(ERROR_DETAIL_HEADER_PREFIX)) metadata.set(key, value);
  });
  // A failure on our side of the connection (refused, reset, TLS...) carries the Node
  // error as its cause and its text names internal addresses: say less.
  const local = e.cause instanceof Error && !(e.cause instanceof ConnectError);
  let message = e.rawMessage;
  if (local) message = `${service}: ${e.code === Code.DeadlineExceeded ? "deadline exceeded" : "unreachable"}`;
  else if (e.code === Code.Unavailable || e.code === Code.DeadlineExceeded) message = `${service}: ${e.rawMessage}`;
  return new ConnectError(message, e.code, metadata, undefined, e);
}

/** Runs an internal call, passing its failure through `downstreamError`. */
export async function downstream<T>(service: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw downstreamError(service, e);
  }
}
