// A minimal gRPC unary caller over node:http2 that sends request bodies the benchmark
// serialized before the clock started. Used for bulk ingest: protobuf-es spends about a
// microsecond per `repeated float` value in toBinary (a 500 x 784 Upsert takes about
// 0.3 s of client CPU), and on a 2-core machine that client work would be measured as the
// server's ingest rate. The server sees exactly the bytes Connect's client would send.
import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders } from "node:http2";

export class GrpcStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(`gRPC status ${status}: ${message}`);
  }
}

/** gRPC framing: 1 byte flags (0 = not compressed), 4 bytes big-endian length, message. */
export function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

export class RawGrpcClient {
  private readonly session: ClientHttp2Session;

  constructor(baseUrl: string) {
    const url = new URL(baseUrl);
    if (url.hostname !== "127.0.0.1") throw new Error(`refusing to connect to ${baseUrl}: benchmarks talk to 127.0.0.1 only`);
    this.session = connect(baseUrl, { maxSessionMemory: 256 });
    this.session.on("error", () => {
      // Surfaced on the pending streams.
    });
    this.session.unref();
  }

  /** Sends one framed request to `path` (/package.Service/Method) and returns the response message bytes. */
  call(path: string, framed: Buffer, timeoutMs: number): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const req = this.session.request({
        [constants.HTTP2_HEADER_METHOD]: "POST",
        [constants.HTTP2_HEADER_PATH]: path,
        [constants.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc+proto",
        te: "trailers",
        "grpc-timeout": `${Math.max(1, Math.round(timeoutMs))}m`,
      });
      const chunks: Buffer[] = [];
      let status: number | undefined;
      let message = "";
      const take = (h: IncomingHttpHeaders): void => {
        const st = h["grpc-status"];
        if (typeof st === "string") {
          status = Number(st);
          const msg = h["grpc-message"];
          message = typeof msg === "string" ? decodeURIComponent(msg) : "";
        }
      };
      const timer = setTimeout(() => {
        req.close(constants.NGHTTP2_CANCEL);
        reject(new Error(`${path}: no answer within ${timeoutMs} ms`));
      }, timeoutMs + 1000);
      req.on("response", (h) => take(h));
      req.on("trailers", (h: IncomingHttpHeaders) => take(h));
      req.on("data", (d: Buffer) => chunks.push(d));
      req.on("error", (e: Error) => {
        clearTimeout(timer);
        reject(e);
      });
      req.on("end", () => {
        clearTimeout(timer);
        if (status !== 0) {
          reject(new GrpcStatusError(status ?? -1, message || "no grpc-status"));
          return;
        }
        const body = Buffer.concat(chunks);
        if (body.length < 5 || body[0] !== 0) {
          reject(new Error(`${path}: unexpected response framing (${body.length} bytes, flags ${body[0]})`));
          return;
        }
        resolve(body.subarray(5, 5 + body.readUInt32BE(1)));
      });
      req.end(framed);
    });
  }

  close(): void {
    this.session.close();
  }
}
