// The gateway's reads over several query processors (real HTTP/2 servers): round-robin
// over the alive QUERY_PROCESSOR nodes of the catalog, another one tried when one is
// gone, and --query-url when the catalog lists none (or only dead addresses).
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { Metric, NodeRole, QueryService } from "@vecraft/rpc";
import { silentLogger, startRpcServer, type RpcServer } from "@vecraft/common";
import { startGateway, stopAll, type Harness } from "./helpers.js";

const servers: RpcServer[] = [];
afterEach(async () => {
  await stopAll();
  await Promise.all(servers.splice(0).map((s) => s.close(0)));
});

/** A query processor that answers every search with one hit named after itself (or fails with `fail`). */
async function processor(name: string, calls: string[], fail?: () => ConnectError): Promise<RpcServer> {
  const server = await startRpcServer({
    host: "127.0.0.1",
    port: 0,
    logger: silentLogger,
    ready: () => true,
    compression: false,
    routes: (router) => {
      router.service(QueryService, {
        search() {
          calls.push(name);
          if (fail) throw fail();
          return { hits: [{ id: name, score: 1 }], read: {} };
        },
      });
    },
  });
  servers.push(server);
  return server;
}

async function search(h: Harness): Promise<string | undefined> {
  const res = await h.client.search({ collection: "docs", vector: [1, 0, 0], k: 1 });
  return res.hits[0]?.id;
}

describe("query processor routing", () => {
  it("spreads reads over the registered processors and fails over when one dies", async () => {
    const calls: string[] = [];
    const q1 = await processor("q1", calls);
    const q2 = await processor("q2", calls);
    const h = await startGateway({ routeQueries: true, config: { queryUrl: "http://127.0.0.1:1" } });
    h.fake.setNode({ id: "q1", address: q1.url, roles: [NodeRole.QUERY_PROCESSOR], alive: true });
    h.fake.setNode({ id: "q2", address: q2.url, roles: [NodeRole.QUERY_PROCESSOR], alive: true });
    await h.client.createCollection({ name: "docs", dimension: 3, metric: Metric.COSINE });
    for (let i = 0; i < 6; i++) await search(h);
    expect(calls.filter((c) => c === "q1")).toHaveLength(3);
    expect(calls.filter((c) => c === "q2")).toHaveLength(3);
    // q1 dies (its lease still alive in the catalog): every read is answered by q2.
    await q1.close(0);
    calls.length = 0;
    for (let i = 0; i < 6; i++) expect(await search(h)).toBe("q2");
    expect(await h.registry.metrics()).toMatch(/vecraft_gateway_query_retries_total\{reason="connection"\} 1\n/);
    // Its lease expired: q1 is no longer tried at all.
    h.fake.setNode({ id: "q1", address: q1.url, roles: [NodeRole.QUERY_PROCESSOR], alive: false });
    await expect.poll(() => h.gateway.catalog.current?.nodes.find((n) => n.id === "q1")?.alive).toBe(false);
    for (let i = 0; i < 4; i++) expect(await search(h)).toBe("q2");
    expect(await h.registry.metrics()).toMatch(/vecraft_gateway_query_retries_total\{reason="connection"\} 1\n/);
  });

  it("uses --query-url when the catalog lists no query processor, and last when the listed ones fail", async () => {
    const calls: string[] = [];
    const q = await processor("fallback", calls);
    const h = await startGateway({ routeQueries: true, config: { queryUrl: q.url } });
    await h.client.createCollection({ name: "docs", dimension: 3, metric: Metric.COSINE });
    expect(await search(h)).toBe("fallback");
    // The catalog lists only a stale address (a processor restarted on another port and
    // not registered again yet): --query-url still answers, after it.
    const gone = await processor("gone", calls);
    await gone.close(0);
    h.fake.setNode({ id: "query-0", address: gone.url, roles: [NodeRole.QUERY_PROCESSOR], alive: true });
    await expect.poll(() => h.gateway.catalog.current?.nodes.length).toBe(3);
    expect(await search(h)).toBe("fallback");
  });

  it("asks another processor when one is unavailable itself, not when a shard had no replica", async () => {
    const calls: string[] = [];
    const shardDown = (): ConnectError => new ConnectError("shard 2: no replica could answer", Code.Unavailable, new Headers({ "vecraft-shard": "2" }));
    const starting = (): ConnectError => new ConnectError("the catalog is not loaded yet", Code.Unavailable);
    const q1 = await processor("q1", calls, shardDown);
    const q2 = await processor("q2", calls, starting);
    const h = await startGateway({ routeQueries: true, config: { queryUrl: "http://127.0.0.1:1" } });
    h.fake.setNode({ id: "q1", address: q1.url, roles: [NodeRole.QUERY_PROCESSOR], alive: true });
    h.fake.setNode({ id: "q2", address: q2.url, roles: [NodeRole.QUERY_PROCESSOR], alive: true });
    await h.client.createCollection({ name: "docs", dimension: 3, metric: Metric.COSINE });
    await expect.poll(() => h.gateway.catalog.current?.nodes.length).toBeGreaterThanOrEqual(2);
    // Whichever processor comes first, the shard failure is final and is the answer.
    await expect(search(h)).rejects.toThrow(/shard 2: no replica could answer/);
    await expect(search(h)).rejects.toThrow(/shard 2: no replica could answer/);
    // Round-robin starts one search on each. q2's own unavailability sent that search on
    // to q1; q1's shard failure was never retried on q2.
    expect(calls.filter((c) => c === "q1")).toHaveLength(2);
    expect(calls.filter((c) => c === "q2")).toHaveLength(1);
  });
});
