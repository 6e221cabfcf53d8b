import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, afterAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { ConnectRouter, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { JournalService } from "@vecraft/rpc";
import { Deferred, NotFoundError, abortableSleep, createLogger, createMetrics, startRpcServer } from "../src/index.js";
import type { RpcServer } from "../src/index.js";

/** Collects log lines so tests can assert what the server logged. */
function memoryLogger(): { lines: Record<string, unknown>[]; logger: ReturnType<typeof createLogger> } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    name: "test",
    level: "debug",
    stream: { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) },
  });
  return { lines, logger };
}

/** The stub JournalService: behaviour chosen per call by the x-test-mode header. */
class Stub {
  hanging = 0;
  readonly hangStarted: Deferred<void>[] = [new Deferred<void>(), new Deferred<void>(), new Deferred<void>()];
  readonly release = new Deferred<void>();
  slowStarted = new Deferred<void>();

  routes = (router: ConnectRouter): void => {
    router.service(JournalService, {
      getPartitions: async (_req, ctx) => {
        switch (ctx.requestHeader.get("x-test-mode")) {
          case "hang":
            this.hangStarted[this.hanging++]?.resolve();
            // Ends only when the server aborts it: rejects with the shutdown reason.
            await abortableSleep(600_000, ctx.signal);
            break;
          case "slow":
            this.slowStarted.resolve();
            await this.release.promise;
            break;
          case "not-found":
            throw new NotFoundError("partition 7 is not hosted here", { details: { partition: 7 } });
          case "bug":
            throw new Error("invariant broken at /var/lib/secret");
          default:
            break;
        }
        return { nodeId: "node-1", partitions: [{ partition: 0, epoch: 1, commitOffset: 42n, serving: true }] };
      },
      async *subscribe(req, ctx) {
        // fromOffset 1000: an endless stream of big messages, as a snapshot transfer is,
        // so that writes are in flight when the client goes away.
        const endless = req.fromOffset === 1000n;
        const last = endless ? BigInt(Number.MAX_SAFE_INTEGER) : 3n;
        const entries = endless ? [{ payloadBytes: new Uint8Array(256 * 1024) }] : [];
        for (let i = 1n; i <= last && !ctx.signal.aborted; i++) {
          yield { commitOffset: i, nextOffset: req.fromOffset + i, entries };
          if (endless) await abortableSleep(0, ctx.signal);
        }
      },
    });
  };
}

const servers: RpcServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close(0)));
});

async function start(
  stub: Stub,
  opts: { ready?: () => boolean; tls?: { cert: string; key: string } } = {},
): Promise<{ server: RpcServer; lines: Record<string, unknown>[] }> {
  const { lines, logger } = memoryLogger();
  const server = await startRpcServer({
    routes: stub.routes,
    host: "127.0.0.1",
    port: 0,
    logger,
    registry: createMetrics(),
    ready: opts.ready ?? (() => true),
    ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
  });
  servers.push(server);
  return { server, lines };
}

function transports(baseUrl: string, ca?: string): Record<string, Transport> {
  const nodeOptions = ca !== undefined ? { ca } : {};
  return {
    "grpc (http/2)": createGrpcTransport({ baseUrl, nodeOptions }),
    "connect (http/1.1)": createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions }),
    "connect (http/2)": createConnectTransport({ baseUrl, httpVersion: "2", nodeOptions }),
    "grpc-web (http/1.1)": createGrpcWebTransport({ baseUrl, httpVersion: "1.1", nodeOptions }),
  };
}

const mode = (m: string): { headers: Record<string, string> } => ({ headers: { "x-test-mode": m } });

async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("expected the call to fail");
}

describe("startRpcServer", () => {
  it("serves one port to gRPC over HTTP/2 and Connect/gRPC-Web over HTTP/1.1", async () => {
    const { server } = await start(new Stub());
    for (const [name, transport] of Object.entries(transports(server.url))) {
      const client = createClient(JournalService, transport);
      const res = await client.getPartitions({});
      expect(res.nodeId, name).toBe("node-1");
      expect(res.partitions[0]?.commitOffset, name).toBe(42n);

      const offsets: bigint[] = [];
      for await (const msg of client.subscribe({ partition: 0, fromOffset: 10n })) {
        offsets.push(msg.nextOffset);
      }
      expect(offsets, name).toEqual([11n, 12n, 13n]);
    }
  });

  it("a client that cancels a stream is routine: nothing on stderr, nothing logged as an error", async () => {
    const { server, lines } = await start(new Stub());
    const written: string[] = [];
    const original = console.error;
    console.error = (...args: unknown[]): void => void written.push(args.map(String).join(" "));
    try {
      const client = createClient(JournalService, transports(server.url)["grpc (http/2)"]!);
      const ac = new AbortController();
      let got = 0;
      await expect(
        (async () => {
          for await (const _msg of client.subscribe({ partition: 0, fromOffset: 1000n }, { signal: ac.signal })) {
            if (++got === 3) ac.abort();
          }
        })(),
      ).rejects.toThrow();
      await abortableSleep(100);
    } finally {
      console.error = original;
    }
    expect(written).toEqual([]);
    expect(lines.filter((l) => l["level"] === "error")).toEqual([]);
  });

  it("maps typed errors to their code and hides unexpected ones behind Internal", async () => {
    const { server, lines } = await start(new Stub());
    const client = createClient(JournalService, transports(server.url)["grpc (http/2)"]!);

    const notFound = await rejection(client.getPartitions({}, mode("not-found")));
    expect(notFound.code).toBe(Code.NotFound);
    expect(notFound.rawMessage).toBe("partition 7 is not hosted here");
    expect(notFound.metadata.get("vecraft-partition")).toBe("7");

    const bug = await rejection(client.getPartitions({}, mode("bug")));
    expect(bug.code).toBe(Code.Internal);
    expect(bug.rawMessage).toBe("internal error");
    // The details stay in the server's log.
    const logged = lines.find((l) => l["msg"] === "rpc failed" && l["level"] === "error");
    expect(logged).toMatchObject({ method: "GetPartitions", code: "internal", error: { message: "invariant broken at /var/lib/secret" } });
  });

  it("answers /metrics, /healthz and /readyz, over HTTP/1.1 and HTTP/2", async () => {
    let ready = false;
    const { server } = await start(new Stub(), { ready: () => ready });
    const client = createClient(JournalService, transports(server.url)["connect (http/1.1)"]!);
    await client.getPartitions({});
    await rejection(client.getPartitions({}, mode("not-found")));
    const stream = client.subscribe({ partition: 0, fromOffset: 1n });
    for await (const _ of stream) {
      // drain
    }

    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
    ready = true;
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);

    const metrics = await fetch(`${server.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get("content-type")).toContain("text/plain");
    const text = await metrics.text();
    const series = 'vecraft_rpc_duration_seconds_count{service="vecraft.v1.JournalService",method=';
    expect(text).toContain(`${series}"GetPartitions",code="ok"} 1`);
    expect(text).toContain(`${series}"GetPartitions",code="not_found"} 1`);
    expect(text).toContain(`${series}"Subscribe",code="ok"} 1`);
    expect(text).toContain("nodejs_eventloop_lag_seconds");

    // The same endpoints over h2c with prior knowledge.
    const session = http2.connect(server.url);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ":path": "/healthz" });
        req.on("response", (h) => resolve(Number(h[":status"])));
        req.on("error", reject);
        req.end();
      });
      expect(status).toBe(200);
    } finally {
      session.close();
    }
  });

  it("close() lets in-flight RPCs finish within the grace period, then aborts the rest with Unavailable", async () => {
    const stub = new Stub();
    const { server } = await start(stub);
    const ts = transports(server.url);
    const grpc = createClient(JournalService, ts["grpc (http/2)"]!);
    const h1 = createClient(JournalService, ts["connect (http/1.1)"]!);

    const hangGrpc = rejection(grpc.getPartitions({}, mode("hang")));
    const hangH1 = rejection(h1.getPartitions({}, mode("hang")));
    const slow = h1.getPartitions({}, mode("slow"));
    await Promise.all([stub.hangStarted[0]!.promise, stub.hangStarted[1]!.promise, stub.slowStarted.promise]);

    const closed = server.close(1_000);
    stub.release.resolve();
    expect((await slow).nodeId).toBe("node-1");

    for (const e of [await hangGrpc, await hangH1]) {
      expect(e.code).toBe(Code.Unavailable);
      expect(e.rawMessage).toBe("server shutting down");
    }
    await closed;
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });

  it("close() with nothing in flight returns promptly and is idempotent", async () => {
    const { server } = await start(new Stub());
    await fetch(`${server.url}/healthz`); // leaves an idle keep-alive connection
    const a = server.close(60_000);
    expect(server.close()).toBe(a);
    await a;
  });
});

/**
 * A TCP proxy that forwards the first bytes a client sends one at a time, so that the
 * server sees the HTTP/2 preface or an HTTP/1.1 request line split across reads.
 */
async function dribbleProxy(target: number): Promise<{ url: string; close: () => void }> {
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(target, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on("error", () => {
        // The peer went away; closing the other side below is all there is to do.
        client.destroy();
        upstream.destroy();
      });
      s.on("close", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    upstream.pipe(client);
    let dribbled = 0;
    let queue = Promise.resolve();
    client.on("data", (chunk: Buffer) => {
      queue = queue.then(async () => {
        for (let i = 0; i < chunk.length; ) {
          const n = dribbled < 40 ? 1 : chunk.length - i;
          upstream.write(chunk.subarray(i, i + n));
          dribbled += n;
          i += n;
          if (dribbled <= 40) await new Promise((r) => setTimeout(r, 2));
        }
      });
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const { port } = proxy.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      proxy.close();
    },
  };
}

describe("startRpcServer protocol detection", () => {
  it("routes connections whose first bytes arrive one at a time", async () => {
    const { server } = await start(new Stub());
    const proxy = await dribbleProxy(server.port);
    try {
      for (const [name, transport] of Object.entries(transports(proxy.url))) {
        const res = await createClient(JournalService, transport).getPartitions({});
        expect(res.nodeId, name).toBe("node-1");
      }
      expect((await fetch(`${proxy.url}/healthz`)).status).toBe(200);
    } finally {
      proxy.close();
    }
  });
});

describe("startRpcServer with TLS", () => {
  let dir: string | undefined;
  let tls: { cert: string; key: string } | undefined;
  beforeAll(() => {
    try {
      dir = mkdtempSync(join(tmpdir(), "vecraft-tls-"));
      execFileSync("openssl", [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
      ], { stdio: "ignore" });
      tls = { cert: readFileSync(join(dir, "cert.pem"), "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8") };
    } catch {
      // No usable openssl on this machine: the TLS test is skipped below.
      tls = undefined;
    }
  });
  afterAll(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("negotiates HTTP/2 or HTTP/1.1 by ALPN on one port", async (ctx) => {
    if (tls === undefined) ctx.skip();
    const { server } = await start(new Stub(), { tls: tls! });
    expect(server.url.startsWith("https://")).toBe(true);
    for (const [name, transport] of Object.entries(transports(server.url, tls!.cert))) {
      const res = await createClient(JournalService, transport).getPartitions({});
      expect(res.nodeId, name).toBe("node-1");
    }
  });
});
