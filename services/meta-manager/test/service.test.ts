// The MetaService over a real server (port 0, real data directory), called with gRPC
// (HTTP/2) and Connect JSON (HTTP/1.1); the journal is a fake behind createRouterTransport.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "@vecraft/common";
import {
  CollectionSchema,
  CollectionState,
  DdlOp,
  MetaService,
  Metric,
  NodeRole,
  type Catalog,
  type Collection,
  type WatchCatalogResponse,
} from "@vecraft/rpc";
import { loadMetaConfig, start, type MetaConfig, type RunningMeta } from "../src/index.js";
import { FakeJournal } from "./fake-journal.js";
import { tempDir } from "./helpers.js";
import { ManualClock } from "./manual-clock.js";

type MetaClient = Client<typeof MetaService>;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function testConfig(dataDir: string, overrides: Record<string, string> = {}): MetaConfig {
  const argv = [
    "--data-dir",
    dataDir,
    "--port",
    "0",
    "--partitions",
    "4",
    "--shutdown-grace-ms",
    "60000",
    "--watch-coalesce-ms",
    "0",
    "--reconcile-interval-ms",
    "0",
  ];
  for (const [k, v] of Object.entries(overrides)) argv.push(`--${k}`, v);
  return loadMetaConfig({ argv, env: {} });
}

interface Setup {
  running: RunningMeta;
  grpc: MetaClient;
  json: MetaClient;
  journal: FakeJournal;
  clock: ManualClock;
  dir: string;
}

async function setup(opts: { dir?: string; journal?: FakeJournal | "none"; clock?: ManualClock; overrides?: Record<string, string> } = {}): Promise<Setup> {
  let dir = opts.dir;
  if (dir === undefined) {
    const d = await tempDir("meta-svc");
    cleanups.push(d.cleanup);
    dir = d.path;
  }
  const journal = opts.journal === "none" || opts.journal === undefined ? new FakeJournal(4) : opts.journal;
  const clock = opts.clock ?? new ManualClock();
  const running = await start(testConfig(dir, opts.overrides), {
    logger: silentLogger,
    clock,
    ...(opts.journal === "none" ? {} : { journal: journal.client() }),
  });
  cleanups.push(() => running.stop());
  const grpc = createClient(MetaService, createGrpcTransport({ baseUrl: running.url }));
  const json = createClient(MetaService, createConnectTransport({ baseUrl: running.url, httpVersion: "1.1" }));
  return { running, grpc, json, journal, clock, dir };
}

function spec(name: string, shards = 2, replicationFactor = 1): Collection {
  return create(CollectionSchema, { name, dimension: 8, metric: Metric.L2, shards, replicationFactor, hnsw: { m: 16, efConstruction: 128, efSearch: 64 } });
}

async function codeOf(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
  } catch (e) {
    const ce = ConnectError.from(e);
    return { code: ce.code, message: ce.rawMessage };
  }
  throw new Error("expected the call to fail");
}

async function register(client: MetaClient, id: string, ttlMs = 1_000): Promise<string> {
  const res = await client.registerNode({ node: { id, roles: [NodeRole.STORAGE], address: `http://${id}.test:7300` }, ttlMs });
  return res.leaseId;
}

async function pull(it: AsyncIterator<WatchCatalogResponse>): Promise<Catalog> {
  const r = await it.next();
  if (r.done === true || r.value.catalog === undefined) throw new Error("the watch ended");
  return r.value.catalog;
}

describe("MetaService", () => {
  it("creates, reads and drops collections over gRPC and Connect JSON, with clear error codes", async () => {
    const { grpc, json, journal, running } = await setup();
    await register(grpc, "s1");
    await register(json, "s2");
    const created = await json.createCollection({ collection: spec("books", 3, 2), requestId: "req-42", principal: "key-1" });
    const c = created.collection!;
    expect(c.state).toBe(CollectionState.READY);
    expect(c.collection!.createdTs).toBeGreaterThan(0n);
    expect(c.shards.every((s) => s.replicas.length === 2)).toBe(true);
    expect(journal.allDdl().every((e) => e.ddl.requestId === "req-42" && e.ddl.principal === "key-1")).toBe(true);

    const viaGrpc = await grpc.getCatalog({});
    expect(viaGrpc.catalog!.revision).toBe(created.revision);
    expect(viaGrpc.catalog!.collections.map((x) => x.uid)).toEqual([c.uid]);
    expect(viaGrpc.catalog!.nodes.map((n) => n.id)).toEqual(["s1", "s2"]);

    // The JSON wire shape, as curl would see it.
    const res = await fetch(`${running.url}/vecraft.v1.MetaService/GetCatalog`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    const body = (await res.json()) as { catalog: { revision: string; partitions: number; collections: { state: string; uid: string }[] } };
    expect(body.catalog.revision).toBe(String(created.revision));
    expect(body.catalog.partitions).toBe(4);
    expect(body.catalog.collections[0]).toMatchObject({ state: "COLLECTION_STATE_READY", uid: c.uid });

    expect(await codeOf(grpc.createCollection({ collection: spec("books") }))).toEqual({
      code: Code.AlreadyExists,
      message: 'collection "books" already exists',
    });
    expect((await codeOf(json.createCollection({ collection: spec("wide", 1, 3) }))).code).toBe(Code.FailedPrecondition);
    expect((await codeOf(json.createCollection({}))).code).toBe(Code.InvalidArgument);
    expect((await codeOf(grpc.registerNode({ ttlMs: 10 }))).code).toBe(Code.InvalidArgument);

    const dropped = await grpc.dropCollection({ name: "books", requestId: "req-43" });
    expect(dropped.collection!.uid).toBe(c.uid);
    expect(
      journal
        .allDdl()
        .filter((e) => e.ddl.op === DdlOp.DROP_COLLECTION)
        .every((e) => e.ddl.requestId === "req-43"),
    ).toBe(true);
    expect(await codeOf(json.dropCollection({ name: "books" }))).toEqual({ code: Code.NotFound, message: 'collection "books" does not exist' });
    expect((await json.getCatalog({})).catalog!.collections).toHaveLength(0);
  });

  it("streams the catalog with WatchCatalog: now, then every new revision; lease expiry shows up", async () => {
    const { grpc, json, clock } = await setup();
    const lease = await register(grpc, "s1", 1_000);
    const ac = new AbortController();
    cleanups.push(() => Promise.resolve(ac.abort()));
    const it = grpc.watchCatalog({}, { signal: ac.signal })[Symbol.asyncIterator]();
    const first = await pull(it);
    expect(first.nodes.map((n) => [n.id, n.alive])).toEqual([["s1", true]]);

    const created = await json.createCollection({ collection: spec("books") });
    let seen = first;
    while (seen.revision < created.revision) seen = await pull(it);
    expect(seen.collections.map((x) => x.collection!.name)).toEqual(["books"]);

    // A Connect-JSON watcher that starts after this revision hears only what comes next.
    const jsonIt = json.watchCatalog({ afterRevision: seen.revision }, { signal: ac.signal })[Symbol.asyncIterator]();
    const jsonNext = pull(jsonIt);

    clock.advance(600);
    expect((await grpc.heartbeat({ leaseId: lease })).alive).toBe(true);
    clock.advance(1_001); // missed the next heartbeat
    let dead = seen;
    while (dead.nodes[0]!.alive) dead = await pull(it);
    expect(dead.revision).toBeGreaterThan(seen.revision);
    expect((await grpc.heartbeat({ leaseId: lease })).alive).toBe(false);
    const fromJson = await jsonNext;
    expect(fromJson.revision).toBeGreaterThan(seen.revision);
  });

  it("exports catalog, node and RPC metrics, and readiness", async () => {
    const { grpc, running } = await setup();
    await register(grpc, "s1");
    await grpc.createCollection({ collection: spec("books") });
    expect((await fetch(`${running.url}/readyz`)).status).toBe(200);
    let text = "";
    for (let i = 0; i < 100 && !/vecraft_meta_collections\{state="ready"\} 1/.test(text); i++) {
      text = await (await fetch(`${running.url}/metrics`)).text();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(text).toMatch(/vecraft_meta_collections\{state="ready"\} 1/);
    expect(text).toMatch(/vecraft_meta_catalog_revision \d+/);
    expect(text).toMatch(/vecraft_meta_nodes_alive\{role="storage"\} 1/);
    expect(text).toMatch(/vecraft_meta_ddl_appends_total\{op="create",outcome="appended"\} \d/);
    expect(text).toMatch(/vecraft_rpc_duration_seconds_bucket\{.*service="vecraft.v1.MetaService",method="CreateCollection"/);
  });

  it("keeps the catalog across a restart, and ends open watch streams when it stops", async () => {
    const first = await setup();
    await register(first.grpc, "s1");
    const created = await first.grpc.createCollection({ collection: spec("books") });
    const it = first.grpc.watchCatalog({})[Symbol.asyncIterator]();
    await pull(it);
    const ended = codeOf(pull(it));
    // The grace period is a minute: stop() returns well before only if the stream is ended for it.
    await first.running.stop();
    expect((await ended).code).toBe(Code.Unavailable);
    const second = await setup({ dir: first.dir, journal: first.journal, clock: first.clock });
    const cat = (await second.grpc.getCatalog({})).catalog!;
    expect(cat.collections.map((c) => c.uid)).toEqual([created.collection!.uid]);
    expect(cat.revision).toBeGreaterThanOrEqual(created.revision);
  });

  it("talks to the journal over gRPC when no client is injected; an unreachable journal leaves the create CREATING", async () => {
    const { grpc } = await setup({ journal: "none", overrides: { "journal-url": "http://127.0.0.1:1", "ddl-retry-budget-ms": "300" } });
    await register(grpc, "s1");
    const err = await codeOf(grpc.createCollection({ collection: spec("books") }));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.message).toMatch(/could not be journaled/);
    const cat = (await grpc.getCatalog({})).catalog!;
    expect(cat.pendingCollections.map((c) => c.state)).toEqual([CollectionState.CREATING]);
    expect(cat.journalAddress).toBe("http://127.0.0.1:1");
  });
});
