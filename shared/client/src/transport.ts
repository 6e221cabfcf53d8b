import type { Interceptor, Transport } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";

/** gRPC over HTTP/2, or the Connect protocol (JSON or binary) over HTTP/1.1 or HTTP/2. */
export type Protocol = "grpc" | "connect";

export interface TransportSettings {
  baseUrl: string;
  protocol: Protocol;
  /** Connect protocol only: "1.1" (default, proxy-friendly) or "2". gRPC is always HTTP/2. */
  httpVersion: "1.1" | "2";
  /** Connect protocol only: binary protobuf instead of JSON. */
  useBinaryFormat: boolean;
  /** Sent as `authorization: Bearer <key>` on every call. */
  apiKey: string | undefined;
  /** Extra headers on every call. */
  headers: Readonly<Record<string, string>>;
  interceptors: readonly Interceptor[];
}

export interface OwnedTransport {
  transport: Transport;
  /** Closes the HTTP/2 connection, if the transport opened one. */
  readonly close: () => void;
}

/** The headers every call carries: the API key and the caller's extras. */
export function callHeaders(apiKey: string | undefined, headers: Readonly<Record<string, string>>): Record<string, string> {
  return { ...headers, ...(apiKey !== undefined ? { authorization: `Bearer ${apiKey}` } : {}) };
}

function headerInterceptor(fixed: Readonly<Record<string, string>>): Interceptor {
  return (next) => (req) => {
    for (const [k, v] of Object.entries(fixed)) {
      if (!req.header.has(k)) req.header.set(k, v);
    }
    return next(req);
  };
}

/**
 * A transport to a Vecraft gateway. The HTTP/2 session manager is created here rather
 * than inside connect-node so that `close()` can end the connection (a CLI should not
 * wait for the idle timeout to exit).
 */
export function createVecraftTransport(s: TransportSettings): OwnedTransport {
  const interceptors = [headerInterceptor(callHeaders(s.apiKey, s.headers)), ...s.interceptors];
  if (s.protocol === "connect" && s.httpVersion === "1.1") {
    const transport = createConnectTransport({
      baseUrl: s.baseUrl,
      httpVersion: "1.1",
      useBinaryFormat: s.useBinaryFormat,
      interceptors,
    });
    return { transport, close: () => undefined };
  }
  const sessionManager = new Http2SessionManager(s.baseUrl);
  const transport =
    s.protocol === "grpc"
      ? createGrpcTransport({ baseUrl: s.baseUrl, sessionManager, interceptors })
      : createConnectTransport({
          baseUrl: s.baseUrl,
          httpVersion: "2",
          sessionManager,
          useBinaryFormat: s.useBinaryFormat,
          interceptors,
        });
  return { transport, close: () => sessionManager.abort() };
}
