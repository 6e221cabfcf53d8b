// Cluster mode against a real etcd started for this file: the failover controller moving
// the replicas of a storage node whose lease expired, etcd stopped (metadata changes fail
// UNAVAILABLE with a clear message, the cached catalog is served, and after etcd returns
// nothing moves because of heartbeats that failed during the outage), and the meta-manager
// as its own process (dist/main.js --store etcd). Leases are etcd's real 2 s minimum. The
// storage nodes are only registrations; their GetStorageStatus is a fake (every listed
// replica serves).
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "@vecraft/common";
import { CollectionSchema, MetaService, Metric, NodeRole, type Catalog as CatalogMessage, type Collection } from "@vecraft/rpc";
import { loadMetaConfig, start, type RunningMeta } from "../src/index.js";
import { etcdForFile } from "./etcd-server.js";
import { FakeJournal } from "./fake-journal.js";
import { FakeStorage } from "./fake-storage.js";
import { eventually, tempDir } from "./helpers.js";

const server = etcdForFile();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await server().client.delete().prefix("/vecraft/meta/");
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const LEASE_MS = 2_000;

function spec(name: string, shards: number, replicationFactor: number): Collection {
  return create(CollectionSchema, { name, dimension: 4, metric: Metric.L2, shards, replicationFactor, hnsw: { m: 16, efConstruction: 128, efSearch: 64 } });
}

interface Cluster {
  running: RunningMeta;
  client: Client<typeof MetaService>;
  registry: Registry;
  /** Starts a storage node's heartbeat loop: heartbeat every 300 ms, register again when the lease is gone, ignore failures (outages). */
  node(id: string): Promise<{ stop(): void; pause(paused: boolean): void }>;
  replicas(name: string): Promise<string[][]>;
  moves(): Promise<number>;
  metric(name: string): Promise<number | undefined>;
}

async function cluster(): Promise<Cluster> {
  const dir = await tempDir("meta-failover-etcd");
  cleanups.push(dir.cleanup);
  const registry = new Registry();
  const argv = ["--data-dir", dir.path, "--port", "0", "--partitions", "3", "--watch-coalesce-ms", "0", "--reconcile-interval-ms", "0"];
  argv.push("--store", "etcd", "--etcd-endpoints", server().endpoint);
  argv.push("--node-lease-ttl-ms", String(LEASE_MS), "--failover-grace-ms", "0", "--failover-interval-ms", "500ms", "--shutdown-grace-ms", "1s");
  const storage = new FakeStorage();
  const running = await start(loadMetaConfig({ argv, env: {} }), {
    logger: silentLogger,
    registry,
    journal: new FakeJournal(3).client(),
    storageClient: storage.client,
  });
  storage.catalog = () => running.catalog.getCatalog(AbortSignal.timeout(5_000));
  cleanups.push(() => running.stop());
  const client = createClient(MetaService, createGrpcTransport({ baseUrl: running.url }));
  const loops: AbortController[] = [];
  cleanups.push(() => {
    for (const l of loops) l.abort();
    return Promise.resolve();
  });
  const register = async (id: string): Promise<string> =>
    (await client.registerNode({ node: { id, roles: [NodeRole.STORAGE], address: `http://${id}.test:7300` }, ttlMs: LEASE_MS })).leaseId;
  return {
    running,
    client,
    registry,
    async node(id) {
      let lease = await register(id);
      const ac = new AbortController();
      let paused = false;
      loops.push(ac);
      void (async () => {
        while (!ac.signal.aborted) {
          await sleep(300);
          if (ac.signal.aborted) return;
          if (paused) continue;
          try {
            if (!(await client.heartbeat({ leaseId: lease })).alive) lease = await register(id);
          } catch {
            // etcd (or the meta-manager) unreachable: keep trying, as a storage node does.
          }
        }
      })();
      return {
        stop: () => ac.abort(),
        pause: (p) => {
          paused = p;
        },
      };
    },
    async replicas(name) {
      const c = (await client.getCatalog({})).catalog!;
      return [...c.collections, ...c.pendingCollections].find((x) => x.collection?.name === name)!.shards.map((s) => [...s.replicas]);
    },
    async metric(name) {
      return (await registry.getSingleMetric(name)?.get())?.values[0]?.value;
    },
    async moves() {
      const m = await registry.getSingleMetric("vecraft_meta_failover_moves_total")?.get();
      return (m?.values ?? []).reduce((a, v) => a + v.value, 0);
    },
  };
}

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("expected the call to fail");
}

describe("failover with etcd", () => {
  it("moves the replicas of a storage node whose lease expired to the alive nodes", async () => {
    const c = await cluster();
    const s1 = await c.node("s1");
    await c.node("s2");
    await c.node("s3");
    await c.client.createCollection({ collection: spec("books", 3, 2), requestId: "r1" });
    const before = await c.replicas("books");
    const onS1 = before.filter((r) => r.includes("s1")).length;
    expect(onS1).toBe(2);
    s1.stop();
    const after = await eventually(
      async () => {
        const r = await c.replicas("books");
        return r.flat().includes("s1") ? undefined : r;
      },
      15_000,
      "s1's replicas to move",
    );
    for (const r of after) expect([...r].sort()).toEqual(["s2", "s3"]);
    expect(await c.moves()).toBe(onS1);
  }, 30_000);

  it("etcd stopped: metadata changes fail UNAVAILABLE clearly, the cached catalog is served, and heartbeats lost in the outage move nothing", async () => {
    const e = server();
    const c = await cluster();
    const s1 = await c.node("s1");
    await c.node("s2");
    await c.node("s3");
    await c.client.createCollection({ collection: spec("books", 3, 2), requestId: "r1" });
    const before = (await c.client.getCatalog({})).catalog!;
    await eventually(() => (c.running.catalog.latest?.revision === before.revision ? true : undefined));

    await e.stop();
    // s1 stays silent until after etcd is back (a slow node): its lease must survive.
    s1.pause(true);
    try {
      const message = new RegExp(
        `the metadata store \\(etcd at ${e.endpoint.replace(/[.]/g, "\\.")}\\) is unreachable.*data reads and writes on the existing topology keep working`,
      );
      const errors = await Promise.all([
        failure(c.client.createCollection({ collection: spec("other", 1, 1), requestId: "r2" })),
        failure(c.client.dropCollection({ name: "books", requestId: "r3" })),
        failure(c.client.registerNode({ node: { id: "s9", roles: [NodeRole.STORAGE], address: "http://s9.test:7300" }, ttlMs: LEASE_MS })),
        failure(c.client.heartbeat({ leaseId: "1" })),
      ]);
      for (const err of errors) {
        expect(err.code).toBe(Code.Unavailable);
        expect(err.rawMessage).toMatch(message);
      }
      // A service starting now (a new client, Connect JSON) still gets the catalog, and a new watch starts with it.
      const json = createClient(MetaService, createConnectTransport({ baseUrl: c.running.url, httpVersion: "1.1" }));
      expect((await json.getCatalog({})).catalog).toEqual(before);
      for await (const w of c.client.watchCatalog({ afterRevision: 0n })) {
        expect(w.catalog).toEqual(before);
        break;
      }
      expect((await fetch(`${c.running.url}/readyz`)).status).toBe(200);
      // Longer than a lease: every heartbeat in this window fails.
      await sleep(LEASE_MS + 1_000);
    } finally {
      // s1 comes back 500 ms after the meta-manager sees etcd answer again (etcd restores
      // leases with a fresh TTL when it restarts). The helper's own readiness check can
      // lag behind, so watch the meta-manager while etcd starts.
      const restarted = e.start();
      await eventually(async () => ((await c.metric("vecraft_meta_store_reachable")) === 1 ? true : undefined), 15_000, "the store to answer");
      await sleep(500);
      s1.pause(false);
      await restarted;
    }
    // Topology changes work again without a restart.
    await eventually(
      async () => {
        try {
          return await c.client.createCollection({ collection: spec("other", 1, 1), requestId: "r2" });
        } catch {
          return undefined;
        }
      },
      15_000,
      "CreateCollection after etcd returned",
    );
    // A lease TTL and more after etcd returned: the nodes renewed (or re-registered), nothing moved.
    await sleep(LEASE_MS + 1_500);
    const now = (await c.client.getCatalog({})).catalog!;
    expect(now.nodes.map((n) => [n.id, n.alive])).toEqual([
      ["s1", true],
      ["s2", true],
      ["s3", true],
    ]);
    expect(await c.replicas("books")).toEqual(before.collections[0]!.shards.map((s) => s.replicas));
    expect(await c.running.failover!.pass()).toMatchObject({ moves: [], deadNodes: [], waitingNodes: [] });
    expect(await c.moves()).toBe(0);
    // The controller is not stuck either: a node that really dies now is replaced.
    s1.stop();
    await eventually(async () => ((await c.replicas("books")).flat().includes("s1") ? undefined : true), 15_000, "s1's replicas to move");
    expect(await c.moves()).toBe(2);
  }, 60_000);
});

const packageDir = join(dirname(fileURLToPath(import.meta.url)), "..");

describe("meta-manager process", () => {
  it("runs as its own process with --store etcd: serves the catalog from etcd, ready, stops on SIGTERM", async () => {
    const dir = await tempDir("meta-proc");
    cleanups.push(dir.cleanup);
    const args = ["--store", "etcd", "--etcd-endpoints", server().endpoint, "--partitions", "3", "--journal-url", "http://127.0.0.1:1"];
    const child = spawn(process.execPath, [join(packageDir, "dist", "main.js"), ...args, "--port", "0", "--data-dir", dir.path], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, VECRAFT_LOG_LEVEL: "warn" },
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    });
    let out = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    const url = await eventually(() => /serving on (http:\/\/\S+)/.exec(out)?.[1], 20_000, "the meta-manager process to serve");
    expect(out).toContain(`etcd at ${server().endpoint}`);
    await eventually(async () => ((await fetch(`${url}/readyz`)).status === 200 ? true : undefined), 10_000, "readiness");
    const client = createClient(MetaService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
    const cat: CatalogMessage = (await client.getCatalog({})).catalog!;
    expect(cat).toMatchObject({ partitions: 3, journalAddress: "http://127.0.0.1:1" });
    expect(JSON.parse((await server().client.get("/vecraft/meta/cluster").string()) ?? "null")).toMatchObject({ partitions: 3 });
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  }, 30_000);
});
