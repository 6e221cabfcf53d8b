import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type * as tls from "node:tls";
import type { EventEmitter } from "node:events";
import { Code, ConnectError, createConnectRouter } from "@connectrpc/connect";
import type { ConnectRouter, ConnectRouterOptions, Interceptor } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { Registry } from "prom-client";
import { toConnectError } from "./errors.js";
import { Deferred, abortReason } from "./lifecycle.js";
import type { Logger } from "./logger.js";
import { codeLabel, rpcMetricsInterceptor } from "./metrics.js";

/** Default `maxTimeoutMs`: a client asking for a longer deadline gets InvalidArgument. */
export const DEFAULT_MAX_TIMEOUT_MS = 5 * 60_000;
/** Default `readMaxBytes` (Connect's own default is ~4 GiB). */
export const DEFAULT_READ_MAX_BYTES = 16 * 1024 * 1024;
/** Default `writeMaxBytes`. */
export const DEFAULT_WRITE_MAX_BYTES = 16 * 1024 * 1024;
/** Default `maxConnections`: bounds the sockets (and the maps that track them) per server. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;
/** Default grace period of `close()`. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;

/** How long aborted handlers get to write their Unavailable responses before sockets are destroyed. */
const ABORT_FLUSH_MS = 1_000;
/** A connection that sends nothing for this long is dropped before it is routed. */
const PEEK_TIMEOUT_MS = 10_000;
/** The client connection preface of HTTP/2 (RFC 9113 §3.4); h2c "prior knowledge" starts with it. */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export interface RpcServerOptions {
  /** Registers the services: `(router) => router.service(XService, impl)`. */
  routes: (router: ConnectRouter) => void;
  /** Interface to bind, e.g. "127.0.0.1" or "0.0.0.0". */
  host: string;
  /** Port to bind; 0 picks a free one (read it back from `RpcServer.port`). */
  port: number;
  logger: Logger;
  /** Answers `/readyz`. The server itself reports not-ready once `close()` starts. */
  ready: () => boolean;
  /** When given, `/metrics` serves it and RPCs are timed into it. */
  registry?: Registry;
  /** Run inside the built-in metrics and error-mapping interceptors (first = outermost). */
  interceptors?: readonly Interceptor[];
  /** Longest deadline a client may ask for. Default 5 min. */
  maxTimeoutMs?: number;
  /** Largest request message accepted. Default 16 MiB. */
  readMaxBytes?: number;
  /** Largest response message sent. Default 16 MiB. */
  writeMaxBytes?: number;
  /** Connections beyond this are refused by the kernel-facing server. Default 10 000. */
  maxConnections?: number;
  /** Serve TLS (HTTP/2 via ALPN, HTTP/1.1 fallback). Plaintext when absent. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Maps errors thrown by handlers; default `toConnectError`. */
  mapError?: (e: unknown) => ConnectError;
  /**
   * Options of the JSON codec (Connect JSON and gRPC-Web/JSON), e.g.
   * `{ useProtoFieldName: true }` for snake_case field names in responses. Requests are
   * parsed with both the JSON and the proto names either way.
   */
  jsonOptions?: ConnectNodeAdapterOptions["jsonOptions"];
  /**
   * Accept compressed requests and compress large responses (gzip, brotli). Default true;
   * internal services turn it off: on loopback, compressing vectors and journal streams
   * costs CPU and saves nothing.
   */
  compression?: boolean;
  /** Aborts the start (binding the port). */
  signal?: AbortSignal;
}

export interface RpcServer {
  /** Base URL for clients, e.g. "http://127.0.0.1:41234". */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /**
   * Graceful stop: refuse new connections and report not-ready, let in-flight RPCs finish
   * for up to `graceMs`, then abort the rest (their handlers' signals fire with
   * `ConnectError("server shutting down", Code.Unavailable)`) and destroy every socket.
   * Idempotent: later calls return the same promise.
   */
  close(graceMs?: number): Promise<void>;
}

/** Codes that mean the server is at fault: logged as errors, with the original cause. */
const SERVER_FAULTS: ReadonlySet<Code> = new Set([Code.Internal, Code.Unknown, Code.DataLoss]);

/** Node's errors for writing to a stream or socket the peer has already closed or reset. */
const PEER_GONE_CODES: ReadonlySet<string> = new Set([
  "ERR_HTTP2_INVALID_STREAM",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_HTTP2_STREAM_CANCEL",
  "ERR_STREAM_DESTROYED",
  "ERR_STREAM_PREMATURE_CLOSE",
  "ERR_STREAM_WRITE_AFTER_END",
  "ECONNRESET",
  "EPIPE",
]);

/** Whether `e` is a write failing because the client went away (a cancelled stream, a reset connection). */
function peerGone(e: unknown): boolean {
  const code = e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined;
  return code !== undefined && PEER_GONE_CODES.has(code);
}

/**
 * Maps whatever a handler throws through `mapError` (default `toConnectError`), for unary
 * and streaming RPCs, so that typed Vecraft errors reach clients with their code and
 * unexpected errors reach them as a generic Internal. Server faults are logged here, with
 * the original error, because the client only sees the generic message.
 */
export function errorMappingInterceptor(logger: Logger, mapError: (e: unknown) => ConnectError = toConnectError): Interceptor {
  return (next) => async (req) => {
    const report = (e: unknown): ConnectError => {
      // A client that cancels a stream makes the next write fail: routine, not a fault.
      const ce = req.signal.aborted && peerGone(e) ? new ConnectError("the client went away", Code.Canceled, undefined, undefined, e) : mapError(e);
      const fields = { service: req.service.typeName, method: req.method.name, code: codeLabel(ce.code), error: e };
      if (SERVER_FAULTS.has(ce.code)) {
        logger.error("rpc failed", fields);
      } else {
        logger.debug("rpc failed", fields);
      }
      return ce;
    };
    try {
      const res = await next(req);
      if (!res.stream) {
        return res;
      }
      return { ...res, message: mapStreamErrors(res.message, report) };
    } catch (e) {
      throw report(e);
    }
  };
}

async function* mapStreamErrors<T>(stream: AsyncIterable<T>, report: (e: unknown) => ConnectError): AsyncGenerator<T> {
  try {
    yield* stream;
  } catch (e) {
    throw report(e);
  }
}

type AnyRequest = http.IncomingMessage | http2.Http2ServerRequest;
type AnyResponse = http.ServerResponse | http2.Http2ServerResponse;
type FallbackFn = NonNullable<ConnectNodeAdapterOptions["fallback"]>;

/**
 * connectNodeAdapter (connect-node's connect-node-adapter.ts) without its console.error:
 * a response that cannot be written because the client went away (a cancelled stream, a
 * reset connection) is routine between our processes (a bootstrap cancels a snapshot
 * stream, a subscriber resubscribes) and is logged at debug; any other failure goes to
 * the service's logger at error, as JSON like every other line.
 */
function nodeAdapter(
  routerOptions: ConnectRouterOptions,
  routes: (router: ConnectRouter) => void,
  fallback: FallbackFn,
  logger: Logger,
): (req: AnyRequest, res: AnyResponse) => void {
  const router = createConnectRouter(routerOptions);
  routes(router);
  const paths = new Map(router.handlers.map((h) => [h.requestPath, h]));
  return (req, res) => {
    const uHandler = paths.get(req.url?.split("?", 2)[0] ?? "");
    if (uHandler === undefined) {
      fallback(req, res);
      return;
    }
    const uReq = universalRequestFromNodeRequest(req, res, undefined, undefined);
    uHandler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        const gone = "stream" in res ? res.stream.destroyed : res.destroyed;
        const fields = { rpc: `${uHandler.service.typeName}/${uHandler.method.name}`, err: reason };
        if (gone) logger.debug("response not written: the client went away", fields);
        else logger.error("rpc failed", fields);
      });
  };
}

function bracketHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

function urlHost(host: string): string {
  // A wildcard bind is reachable on loopback; that is what a local client should dial.
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return bracketHost(host);
}

/**
 * Serves Connect, gRPC and gRPC-Web on one port, over HTTP/1.1 and HTTP/2 alike, plus
 * `GET /metrics`, `/healthz` (200 while the process runs) and `/readyz` (200 when
 * `ready()` and not shutting down, else 503).
 *
 * Plaintext: node's `http2.createServer` cannot fall back to HTTP/1.1, so a TCP server
 * peeks at the first bytes of each connection and hands it to an HTTP/2 server when they
 * are the HTTP/2 preface (h2c with prior knowledge, what gRPC clients send), otherwise to
 * an HTTP/1.1 server. With `tls`, ALPN decides (`allowHTTP1`).
 */
export async function startRpcServer(options: RpcServerOptions): Promise<RpcServer> {
  const { logger, registry } = options;
  const shutdown = new AbortController();
  const interceptors: Interceptor[] = [
    ...(registry !== undefined ? [rpcMetricsInterceptor(registry)] : []),
    errorMappingInterceptor(logger, options.mapError),
    ...(options.interceptors ?? []),
  ];

  let closing = false;
  let inFlight = 0;
  let drained: Deferred<void> | undefined;
  const sockets = new Set<net.Socket>();
  const http1Active = new Map<net.Socket, number>();
  const sessions = new Set<http2.ServerHttp2Session>();

  const endpoints: FallbackFn = (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0];
    const method = req.method ?? "GET";
    const reply = (status: number, body: string, contentType = "text/plain; charset=utf-8"): void => {
      res.writeHead(status, {
        "content-type": contentType,
        "content-length": Buffer.byteLength(body),
        "cache-control": "no-store",
      });
      if (method === "HEAD") res.end();
      else res.end(body);
    };
    if (method !== "GET" && method !== "HEAD") {
      reply(404, "not found\n");
      return;
    }
    switch (path) {
      case "/healthz":
        reply(200, "ok\n");
        return;
      case "/readyz": {
        let ready = false;
        try {
          ready = !closing && options.ready();
        } catch (e) {
          // A throwing probe means "not ready"; say why in the logs, not to the prober.
          logger.warn("readiness check threw", { error: e });
        }
        reply(ready ? 200 : 503, ready ? "ready\n" : "not ready\n");
        return;
      }
      case "/metrics":
        if (registry !== undefined) {
          registry.metrics().then(
            (text) => reply(200, text, registry.contentType),
            (e: unknown) => {
              logger.error("collecting metrics failed", { error: e });
              reply(500, "metrics unavailable\n");
            },
          );
          return;
        }
        break;
      default:
        break;
    }
    reply(404, "not found\n");
  };

  const adapter = nodeAdapter(
    {
      interceptors,
      maxTimeoutMs: options.maxTimeoutMs ?? DEFAULT_MAX_TIMEOUT_MS,
      readMaxBytes: options.readMaxBytes ?? DEFAULT_READ_MAX_BYTES,
      writeMaxBytes: options.writeMaxBytes ?? DEFAULT_WRITE_MAX_BYTES,
      shutdownSignal: shutdown.signal,
      acceptCompression: options.compression === false ? [] : [compressionGzip, compressionBrotli],
      ...(options.jsonOptions !== undefined ? { jsonOptions: options.jsonOptions } : {}),
    },
    options.routes,
    endpoints,
    logger,
  );

  const requestDone = (socket: net.Socket | undefined): void => {
    inFlight--;
    // A socket that already closed has left the map; do not put it back.
    if (socket !== undefined && http1Active.has(socket)) {
      const n = (http1Active.get(socket) ?? 1) - 1;
      http1Active.set(socket, n);
      // A keep-alive HTTP/1.1 connection that went idle during shutdown is closed now.
      if (closing && n === 0) socket.destroySoon();
    }
    if (inFlight === 0) drained?.resolve();
  };

  const onRequest = (req: AnyRequest, res: AnyResponse): void => {
    inFlight++;
    const socket = req.httpVersionMajor === 1 ? req.socket : undefined;
    if (socket !== undefined) {
      http1Active.set(socket, (http1Active.get(socket) ?? 0) + 1);
      if (closing) res.setHeader("connection", "close");
    }
    let done = false;
    const finish = (): void => {
      if (!done) {
        done = true;
        requestDone(socket);
      }
    };
    (res as EventEmitter).once("finish", finish).once("close", finish);
    adapter(req, res);
  };

  const trackSocket = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      http1Active.delete(socket);
    });
    // Without a listener an ECONNRESET would crash the process; the servers add their own.
    socket.on("error", (e: Error) => logger.debug("connection error", { error: e }));
  };

  const trackSession = (session: http2.ServerHttp2Session): void => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    if (closing) session.close();
  };

  let listener: net.Server;
  let h1: http.Server | undefined;
  let protocol: "http" | "https";
  if (options.tls !== undefined) {
    protocol = "https";
    const secure = http2.createSecureServer({ cert: options.tls.cert, key: options.tls.key, allowHTTP1: true }, onRequest);
    secure.on("secureConnection", (socket: tls.TLSSocket) => {
      trackSocket(socket);
      if (socket.alpnProtocol !== "h2") http1Active.set(socket, 0);
    });
    secure.on("session", trackSession);
    secure.on("sessionError", (e: Error) => logger.debug("http/2 session error", { error: e }));
    secure.on("tlsClientError", (e: Error) => logger.debug("tls handshake failed", { error: e }));
    listener = secure;
  } else {
    protocol = "http";
    const h1Server = http.createServer(onRequest);
    const h2Server = http2.createServer(onRequest);
    h2Server.on("session", trackSession);
    h2Server.on("sessionError", (e: Error) => logger.debug("http/2 session error", { error: e }));
    h1 = h1Server;
    listener = net.createServer((socket) => {
      if (closing) {
        socket.destroy();
        return;
      }
      trackSocket(socket);
      routeByPreface(socket, h1Server, h2Server, http1Active);
    });
  }
  listener.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  await listen(listener, options.host, options.port, options.signal);
  listener.on("error", (e: Error) => logger.error("server error", { error: e }));
  // The HTTP/1.1 server never listens itself; 'listening' starts its connection tracking,
  // which enforces headersTimeout/requestTimeout and makes closeIdleConnections work.
  h1?.emit("listening");
  const address = listener.address() as net.AddressInfo;
  const url = `${protocol}://${urlHost(options.host)}:${address.port}`;
  logger.info("rpc server listening", { url, host: options.host, port: address.port, tls: protocol === "https" });

  let closed: Promise<void> | undefined;
  const close = (graceMs = DEFAULT_SHUTDOWN_GRACE_MS): Promise<void> => {
    closed ??= (async (): Promise<void> => {
      closing = true;
      logger.info("rpc server closing", { inFlight, graceMs });
      const stopped = new Promise<void>((resolve) => listener.close(() => resolve()));
      for (const session of sessions) session.close();
      for (const [socket, n] of http1Active) {
        if (n === 0) socket.destroy();
      }
      h1?.closeIdleConnections();
      if (inFlight > 0) {
        drained = new Deferred<void>();
        await waitFor(drained.promise, graceMs);
      }
      if (inFlight > 0) {
        logger.warn("aborting rpcs still running after the grace period", { inFlight });
      }
      shutdown.abort(new ConnectError("server shutting down", Code.Unavailable));
      if (inFlight > 0) {
        await waitFor((drained ?? new Deferred<void>()).promise, ABORT_FLUSH_MS);
      }
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      h1?.close();
      await stopped;
      logger.info("rpc server closed");
    })();
    return closed;
  };

  return { url, host: options.host, port: address.port, close };
}

/** Hands a plaintext connection to the HTTP/2 or the HTTP/1.1 server, by its first bytes. */
function routeByPreface(socket: net.Socket, h1: http.Server, h2: http2.Http2Server, http1Active: Map<net.Socket, number>): void {
  let buffered: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), PEEK_TIMEOUT_MS);
  timer.unref();
  const onData = (chunk: Buffer): void => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    const n = Math.min(buffered.length, H2_PREFACE.length);
    const isH2 = buffered.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    if (isH2 && buffered.length < H2_PREFACE.length) {
      return; // a prefix of the preface so far: wait for more bytes
    }
    clearTimeout(timer);
    socket.off("data", onData);
    socket.off("close", onClose);
    socket.pause();
    socket.unshift(buffered);
    if (isH2) {
      // The http2 session reads the bytes buffered in the socket itself.
      h2.emit("connection", socket);
    } else {
      http1Active.set(socket, 0);
      h1.emit("connection", socket);
      // The http1 parser consumes the socket handle directly; flowing mode delivers the
      // unshifted bytes to it.
      socket.resume();
    }
  };
  const onClose = (): void => clearTimeout(timer);
  socket.on("data", onData);
  socket.once("close", onClose);
}

function listen(server: net.Server, host: string, port: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      cleanup();
      server.close();
      // Passed through untouched, like every abort in this package (see abortableSleep).
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      reject(abortReason(signal ?? AbortSignal.abort()));
    };
    const onError = (e: Error): void => {
      cleanup();
      reject(e);
    };
    const onListening = (): void => {
      cleanup();
      resolve();
    };
    const cleanup = (): void => {
      signal?.removeEventListener("abort", onAbort);
      server.off("error", onError);
      server.off("listening", onListening);
    };
    if (signal?.aborted === true) {
      onAbort();
      return;
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(port, host);
  });
}

/** Resolves when `p` settles or after `ms`, whichever is first; never rejects. */
async function waitFor(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  try {
    await Promise.race([p.catch(() => undefined), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
