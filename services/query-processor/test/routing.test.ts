// Replica routing (the order itself is NodeHealth's, tested in @vecraft/meta-client): the
// wait budget split between a lagging replica and the next, and a storage
// node that dies (connections reset, then refused) in the middle of searches.
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { silentLogger, startRpcServer } from "@vecraft/common";
import { CatalogSchema, CollectionSchema, Consistency, Metric, NodeRole, QueryService, StorageService, type RegisteredNode } from "@vecraft/rpc";
import { Registry } from "prom-client";
import { loadQueryConfig, start } from "../src/index.js";
import { shareOf } from "../src/query.js";
import { fakeJournal, fakeMeta } from "./fakes.js";

describe("shareOf", () => {
  it("gives an attempt with another replica after it half of what is left, and the last all of it", () => {
    const signal = new AbortController().signal;
    expect(shareOf({ signal, waitMs: 2000, timeoutMs: 10_000 }, 0, true)).toEqual({ waitMs: 1000, call: { signal, timeoutMs: 5000 } });
    expect(shareOf({ signal, waitMs: 2000, timeoutMs: 10_000 }, 1000, false)).toEqual({ waitMs: 1000, call: { signal, timeoutMs: 9000 } });
    // A short deadline still leaves the replica time to answer DEADLINE_EXCEEDED itself.
    expect(shareOf({ signal, waitMs: 2000, timeoutMs: 2000 }, 0, true)).toEqual({ waitMs: 1000, call: { signal, timeoutMs: 1100 } });
    expect(shareOf({ signal, waitMs: 2000, timeoutMs: undefined }, 0, true)).toEqual({ waitMs: 1000, call: { signal } });
  });
});

function catalogOf(nodes: { id: string; address: string }[]) {
  return create(CatalogSchema, {
    revision: 1n,
    partitions: 1,
    collections: [
      {
        collection: create(CollectionSchema, { name: "c", dimension: 2, metric: Metric.COSINE, shards: 1 }),
        uid: "u1",
        shards: [{ shard: 0, partition: 0, replicas: nodes.map((n) => n.id) }],
      },
    ],
    nodes: nodes.map((n) => ({ ...n, alive: true, roles: [NodeRole.STORAGE] })),
  });
}

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

const vector = new Uint8Array(Float32Array.from([1, 0]).buffer);
const eventual = { level: Consistency.EVENTUAL };

interface Storage {
  waits: number[];
  behave: (waitMs: number) => Promise<void>;
}

async function startQuery(catalog: ReturnType<typeof catalogOf>, storage: Record<string, Storage> | undefined, registry = new Registry()) {
  const registrations: RegisteredNode[] = [];
  const clients =
    storage &&
    new Map(
      Object.entries(storage).map(([id, st]) => [
        `http://${id}`,
        createClient(
          StorageService,
          createRouterTransport(({ service }) => {
            service(StorageService, {
              async searchShard(req) {
                const waitMs = req.read?.waitMs ?? 0;
                st.waits.push(waitMs);
                await st.behave(waitMs);
                return { node: id, hits: [{ id: `from-${id}`, score: 1 }] };
              },
            });
          }),
        ),
      ]),
    );
  const config = loadQueryConfig({ argv: ["--port", "0", "--default-wait-ms", "400", "--replica-cooldown-ms", "60s"], env: {} });
  const running = await start(config, {
    logger: silentLogger,
    registry,
    meta: fakeMeta(() => catalog, registrations),
    journal: fakeJournal(),
    ...(clients ? { storageFor: (address: string) => clients.get(address)! } : {}),
  });
  stops.push(() => running.stop());
  return { client: createClient(QueryService, createGrpcTransport({ baseUrl: running.url })), registrations, url: running.url, registry };
}

describe("QueryEngine routing", () => {
  it("retries a lagging replica on another with the rest of the wait budget, then prefers the other", async () => {
    // Waits for its read target as long as it was asked to, and does not reach it.
    const lagging: Storage = {
      waits: [],
      behave: async (waitMs) => {
        await new Promise((r) => setTimeout(r, waitMs));
        throw new ConnectError("read target not reached in time", Code.DeadlineExceeded);
      },
    };
    const fresh: Storage = { waits: [], behave: () => Promise.resolve() };
    const cat = catalogOf([
      { id: "n1", address: "http://n1" },
      { id: "n2", address: "http://n2" },
    ]);
    const { client, registry } = await startQuery(cat, { n1: lagging, n2: fresh });
    // The first read of a fresh process starts with the first replica: n1.
    const res = await client.search({ collection: "c", vectorF32: vector, k: 1, consistency: eventual });
    expect(res.hits.map((h) => h.id)).toEqual(["from-n2"]);
    // Half of the 400 ms wait budget for the first replica, what is left for the second.
    expect(lagging.waits).toEqual([200]);
    expect(fresh.waits).toHaveLength(1);
    expect(fresh.waits[0]).toBeGreaterThan(0);
    expect(fresh.waits[0]).toBeLessThanOrEqual(200);
    // n1 is cooling down: the next reads go to n2 first and never reach n1.
    for (let i = 0; i < 3; i++) await client.search({ collection: "c", vectorF32: vector, k: 1, consistency: eventual });
    expect(lagging.waits).toHaveLength(1);
    expect(fresh.waits).toHaveLength(4);
    const text = await registry.metrics();
    expect(text).toMatch(/vecraft_query_replica_retries_total\{reason="deadline_exceeded"\} 1/);
    expect(text).toMatch(/vecraft_query_replica_failures_total\{node="n1",reason="deadline_exceeded"\} 1/);
    expect(text).toMatch(/vecraft_query_replica_requests_total 5/);
  });

  it("registers as a query processor with its listen URL", async () => {
    const { registrations, url } = await startQuery(catalogOf([{ id: "n1", address: "http://n1" }]), { n1: { waits: [], behave: () => Promise.resolve() } });
    await expect.poll(() => registrations.length).toBeGreaterThan(0);
    expect(registrations[0]).toMatchObject({ id: "query-0", address: url, roles: [NodeRole.QUERY_PROCESSOR] });
  });
});

/**
 * A TCP proxy in front of a storage server: `kill()` resets every connection and refuses
 * new ones, which is what a storage node killed with SIGKILL looks like to its clients.
 */
async function killableProxy(target: number): Promise<{ url: string; kill(): void }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    const outbound = createConnection(target);
    sockets.add(inbound).add(outbound);
    inbound.pipe(outbound).pipe(inbound);
    const drop = (): void => {
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on("error", drop).on("close", drop);
    outbound.on("error", drop).on("close", drop);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  stops.push(() => new Promise((resolve) => server.close(() => resolve())));
  return {
    url: `http://127.0.0.1:${address.port}`,
    kill() {
      server.close();
      for (const s of sockets) s.resetAndDestroy();
    },
  };
}

describe("a storage node killed during searches", () => {
  it("fails no search while another replica is up, including the ones in flight on the dead connection", async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    let inFlight = 0;
    const serve = (id: string, hold: boolean) =>
      startRpcServer({
        compression: false,
        host: "127.0.0.1",
        port: 0,
        logger: silentLogger,
        ready: () => true,
        routes: (router) => {
          router.service(StorageService, {
            async searchShard() {
              if (hold) {
                inFlight++;
                await held;
              }
              return { node: id, hits: [{ id: `from-${id}`, score: 1 }] };
            },
          });
        },
      });
    const s1 = await serve("n1", true);
    const s2 = await serve("n2", false);
    stops.push(() => s1.close(0), () => s2.close(0));
    const p1 = await killableProxy(s1.port);
    const cat = catalogOf([
      { id: "n1", address: p1.url },
      { id: "n2", address: s2.url },
    ]);
    const { client, registry } = await startQuery(cat, undefined);
    // Alternate the first replica: half of these are held on n1 when it dies.
    const searches = Array.from({ length: 8 }, () => client.search({ collection: "c", vectorF32: vector, k: 1, consistency: eventual }, { timeoutMs: 20_000 }));
    await expect.poll(() => inFlight).toBeGreaterThanOrEqual(4);
    p1.kill();
    const results = await Promise.all(searches);
    expect(results.every((r) => r.hits[0]?.id === "from-n2")).toBe(true);
    // And later searches do not wait on the dead node at all.
    for (let i = 0; i < 4; i++) {
      const r = await client.search({ collection: "c", vectorF32: vector, k: 1, consistency: eventual }, { timeoutMs: 5_000 });
      expect(r.hits[0]?.id).toBe("from-n2");
    }
    release();
    const text = await registry.metrics();
    // In-flight calls on the reset connection fail with Aborted (read ECONNRESET), new
    // ones with Unavailable (ECONNREFUSED): both are connection failures.
    expect(text).toMatch(/vecraft_query_replica_failures_total\{node="n1",reason="connection"\} [1-9]/);
  });
});
