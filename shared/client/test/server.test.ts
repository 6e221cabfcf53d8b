// The SDK over real sockets: a VecraftService served by startRpcServer (HTTP/2 and
// HTTP/1.1 on one port), reached with gRPC and with the Connect protocol.
import { afterEach, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorDetailsOf, silentLogger, startRpcServer } from "@vecraft/common";
import type { RpcServer } from "@vecraft/common";
import { createVecraftClient } from "../src/index.js";
import type { ClientRetryInfo, VecraftClient, VecraftClientOptions } from "../src/index.js";
import { createFake, type FakeVecraft } from "./fake-vecraft.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(fake: FakeVecraft, port = 0): Promise<RpcServer> {
  const server = await startRpcServer({ routes: fake.routes, host: "127.0.0.1", port, logger: silentLogger, ready: () => true });
  cleanups.push(() => server.close(100));
  return server;
}

function client(options: VecraftClientOptions): VecraftClient {
  const c = createVecraftClient(options);
  cleanups.push(() => c.close());
  return c;
}

describe("over a real server", () => {
  it.each([
    ["grpc over HTTP/2", { protocol: "grpc" }],
    ["connect JSON over HTTP/1.1", { protocol: "connect" }],
    ["connect binary over HTTP/2", { protocol: "connect", httpVersion: "2", format: "binary" }],
  ] as const)("writes and reads with %s, with the API key and error details", async (_name, protocol) => {
    const fake = createFake();
    const server = await serve(fake);
    const c = client({ baseUrl: server.url, apiKey: "k1", ...protocol });
    await c.createCollection({ name: "docs", dimension: 2, metric: "l2" });
    const w = await c.upsert("docs", [{ id: "a", vector: Float32Array.from([1, 2]), metadata: { n: 1 } }]);
    expect(c.sessionToken).toBe(w.sessionToken);
    const found = await c.search("docs", [1, 2], { k: 1, includeMetadata: true, consistency: "session" });
    expect(found.hits).toEqual([{ id: "a", score: 0, metadata: { n: 1 } }]);
    expect(fake.callsOf("Search")[0]!.headers.get("authorization")).toBe("Bearer k1");

    fake.failNext("Upsert", () => new ConnectError("records[3].vector: expected 2 dimensions, got 3", Code.InvalidArgument, { "vecraft-index": "3" }));
    try {
      await c.upsert("docs", [{ id: "b", vector: [1, 1] }]);
      expect.unreachable();
    } catch (e) {
      const ce = ConnectError.from(e);
      expect(ce.code).toBe(Code.InvalidArgument);
      expect(ce.rawMessage).toBe("records[3].vector: expected 2 dimensions, got 3");
      expect(errorDetailsOf(ce)).toEqual({ index: "3" });
    }
  });

  it("retries a write with the same request id across a server restart", async () => {
    const fake = createFake();
    const first = await serve(fake);
    const retries: ClientRetryInfo[] = [];
    const c = client({ baseUrl: first.url, retry: { initialMs: 20, maxMs: 100, budgetMs: 10_000, onRetry: (i) => retries.push(i) } });
    await c.createCollection({ name: "docs", dimension: 2, metric: "l2" });
    await first.close(100);

    // The server comes back on the same port while the client is retrying.
    const restarted = new Promise<RpcServer>((resolve, reject) => {
      setTimeout(() => void serve(fake, first.port).then(resolve, reject), 150);
    });
    const w = await c.upsert("docs", [{ id: "a", vector: [1, 2] }], { requestId: "restart-1" });
    await restarted;
    expect(w.count).toBe(1);
    expect(retries.length).toBeGreaterThan(0);
    // Refused connections (Unavailable), and possibly a stream the closing server refused.
    expect(retries.every((r) => r.requestId === "restart-1")).toBe(true);
    expect(retries.some((r) => r.error.code === Code.Unavailable)).toBe(true);
    expect(fake.callsOf("Upsert").map((r) => (r.request as { requestId: string }).requestId)).toEqual(["restart-1"]);
  });

  it("fails with Unavailable once the budget is spent on a server that is down", async () => {
    const fake = createFake();
    const gone = await serve(fake);
    await gone.close(100);
    const retries: ClientRetryInfo[] = [];
    const c = client({ baseUrl: gone.url, retry: { initialMs: 10, maxMs: 20, budgetMs: 200, onRetry: (i) => retries.push(i) } });
    try {
      await c.listCollections();
      expect.unreachable();
    } catch (e) {
      expect(ConnectError.from(e).code).toBe(Code.Unavailable);
    }
    expect(retries.length).toBeGreaterThan(0);
  });
});
