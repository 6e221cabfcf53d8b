// gRPC transports for calls between Vecraft processes, guarded against a crash in
// connect-node 2.1: when a peer sends GOAWAY on an idle connection, the session manager
// destroys the session with an error that Node emits on the next tick; a request arriving
// in between moves the manager to a new connection and removes its error listener first,
// so the error is emitted with no listener and takes the process down. It happens when a
// peer shuts down gracefully while requests flow (a query processor or storage node
// restarting). Every session used gets a listener of its own that drops such errors: the
// manager and the requests on the session still see every failure through their own
// listeners and streams.
import type { Http2Session } from "node:http2";
import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager, type GrpcTransportOptions } from "@connectrpc/connect-node";

export type InternalTransportOptions = Omit<GrpcTransportOptions, "sessionManager">;

const guarded = new WeakSet<Http2Session>();

function guard(session: Http2Session | undefined): void {
  if (session === undefined || guarded.has(session)) return;
  guarded.add(session);
  session.on("error", () => {
    // Reported to the session manager and the streams by their own listeners.
  });
}

/** createGrpcTransport (HTTP/2) whose sessions can never emit an unhandled 'error'. */
export function internalGrpcTransport(options: InternalTransportOptions): Transport {
  const manager = new Http2SessionManager(
    options.baseUrl,
    {
      ...(options.pingIntervalMs !== undefined ? { pingIntervalMs: options.pingIntervalMs } : {}),
      ...(options.pingIdleConnection !== undefined ? { pingIdleConnection: options.pingIdleConnection } : {}),
      ...(options.pingTimeoutMs !== undefined ? { pingTimeoutMs: options.pingTimeoutMs } : {}),
      ...(options.idleConnectionTimeoutMs !== undefined ? { idleConnectionTimeoutMs: options.idleConnectionTimeoutMs } : {}),
    },
    options.nodeOptions,
  );
  return createGrpcTransport({
    ...options,
    sessionManager: {
      authority: manager.authority,
      async request(method, path, headers, requestOptions) {
        const stream = await manager.request(method, path, headers, requestOptions);
        guard(stream.session);
        return stream;
      },
      notifyResponseByteRead: (stream) => manager.notifyResponseByteRead(stream),
    },
  });
}
