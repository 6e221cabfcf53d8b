// The gateway over a real server (HTTP/2 gRPC and HTTP/1.1 JSON on one port) in front of
// in-memory fakes of the meta-manager, the journal, a query processor and storage nodes.
import { afterEach, describe, expect, it } from "vitest";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { shardOf } from "@vecraft/model";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Consistency, FieldType, MetaService, Metric, NodeRole, Op, OperationType, ReplicaState, type CreateCollectionRequestSchema } from "@vecraft/rpc";
import { producerIdOf } from "../src/index.js";
import { FakeCluster } from "./fakes.js";
import { eventually, expectCode, startGateway, stopAll, vec, type Harness } from "./helpers.js";

afterEach(stopAll);

const DIM = 4;

type CreateInit = Exclude<MessageInitShape<typeof CreateCollectionRequestSchema>, { $typeName: string }>;

function docsSpec(overrides: CreateInit = {}): CreateInit {
  return {
    name: "docs",
    dimension: DIM,
    metric: Metric.L2,
    shards: 4,
    fields: [
      { $typeName: "vecraft.v1.MetadataField", name: "year", type: FieldType.INT, indexed: true },
      { $typeName: "vecraft.v1.MetadataField", name: "genre", type: FieldType.STRING, indexed: false },
    ],
    ...overrides,
  };
}

async function withDocs(h: Harness, overrides: CreateInit = {}): Promise<void> {
  await h.client.createCollection(docsSpec(overrides));
}

function records(n: number, from = 0): { id: string; vector: number[]; metadata: { year: number; genre: string } }[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `r${from + i}`,
    vector: vec(DIM, from + i),
    metadata: { year: 2000 + ((from + i) % 10), genre: (from + i) % 2 === 0 ? "drama" : "comedy" },
  }));
}

describe("collections", () => {
  it("create, list, describe with per-shard stats, drop; unknown collections are NOT_FOUND naming them", async () => {
    const h = await startGateway();
    const created = await h.client.createCollection({ ...docsSpec(), requestId: "create-1" }, { headers: { "x-trace-id": "trace-1" } });
    expect(created.collection?.name).toBe("docs");
    expect(created.collection?.hnsw).toMatchObject({ m: 16, efConstruction: 128, efSearch: 64 });
    expect(created.collection?.replicationFactor).toBe(1);
    expect(created.collection?.createdTs).toBeGreaterThan(0n);
    // The meta-manager gets the caller's identity with the request (to journal it).
    expect(h.fake.metaCalls[0]).toEqual({ requestId: "create-1", principal: "anonymous" });
    expect(h.fake.metaHeaders[0]!.get("x-vecraft-trace-id")).toBe("trace-1");

    expect((await h.client.listCollections({})).collections.map((c) => c.name)).toEqual(["docs"]);

    await h.client.upsert({ collection: "docs", records: records(20) });
    h.fake.downNodes.add("storage-2");
    const described = (await h.client.describeCollection({ name: "docs" })).collection!;
    const stats = described.stats!;
    expect(stats.shards.map((s) => s.shard)).toEqual([0, 1, 2, 3]);
    expect(stats.shards.map((s) => s.partition)).toEqual([0, 1, 0, 1]);
    // Shards 1 and 3 live on storage-2 only, which does not answer.
    expect(stats.shards.map((s) => s.available)).toEqual([true, false, true, false]);
    expect(stats.shards[0]).toMatchObject({ node: "storage-1", appliedOffset: h.fake.commitOffset(0) });
    const onStorage1 = records(20).filter((r) => shardOf(r.id, 4) % 2 === 0).length;
    expect(stats.records).toBe(BigInt(onStorage1));
    h.fake.downNodes.clear();
    expect((await h.client.describeCollection({ name: "docs" })).collection!.stats!.records).toBe(20n);

    await h.client.dropCollection({ name: "docs", requestId: "drop-1" });
    expect((await h.client.listCollections({})).collections).toEqual([]);
    await expectCode(h.client.describeCollection({ name: "docs" }), Code.NotFound, /collection "docs" does not exist/);
    await expectCode(h.client.upsert({ collection: "docs", records: records(1) }), Code.NotFound, /collection "docs" does not exist/);
    await expectCode(h.client.dropCollection({ name: "docs" }), Code.NotFound, /collection "docs" does not exist/);
    // A retry of the drop that succeeded (same request id) succeeds.
    await h.client.dropCollection({ name: "docs", requestId: "drop-1" });
  });

  it("rejects bad schemas with INVALID_ARGUMENT naming the field, before the meta-manager sees them", async () => {
    const h = await startGateway();
    const cases: [CreateInit, RegExp][] = [
      [{ name: "" }, /^name: required/],
      [{ name: "1abc" }, /^name: "1abc" does not match/],
      [{ dimension: 0 }, /^dimension: 0 is out of range 1\.\.4096/],
      [{ dimension: 5000 }, /^dimension: 5000 is out of range/],
      [{ metric: Metric.UNSPECIFIED }, /^metric: required/],
      [{ shards: 1000 }, /^shards: 1000 is out of range/],
      [{ replicationFactor: 9 }, /^replication_factor: 9 is out of range/],
      [{ hnsw: { $typeName: "vecraft.v1.HnswParams", m: 1, efConstruction: 0, efSearch: 0 } }, /^hnsw\.m: 1 is out of range/],
      [
        {
          fields: [
            { $typeName: "vecraft.v1.MetadataField", name: "a", type: FieldType.INT, indexed: false },
            { $typeName: "vecraft.v1.MetadataField", name: "a", type: FieldType.STRING, indexed: false },
          ],
        },
        /^fields\[1\]\.name: duplicate of fields\[0\]\.name "a"/,
      ],
      [{ fields: [{ $typeName: "vecraft.v1.MetadataField", name: "b", type: FieldType.UNSPECIFIED, indexed: false }] }, /^fields\[0\]\.type: required/],
    ];
    for (const [overrides, message] of cases) {
      await expectCode(h.client.createCollection(docsSpec(overrides)), Code.InvalidArgument, message);
    }
    expect(h.fake.metaHeaders).toHaveLength(0);
    await expectCode(h.client.createCollection({ ...docsSpec(), requestId: "x".repeat(129) }), Code.InvalidArgument, /^request_id: 129 bytes/);
  });

  it("a CreateCollection retried with its request_id returns the collection; a second create is ALREADY_EXISTS", async () => {
    const h = await startGateway();
    const first = await h.client.createCollection({ ...docsSpec(), requestId: "c-1" });
    const again = await h.client.createCollection({ ...docsSpec(), requestId: "c-1" });
    expect(again.collection?.createdTs).toBe(first.collection?.createdTs);
    await expectCode(h.client.createCollection({ ...docsSpec(), requestId: "c-2" }), Code.AlreadyExists);
    await expectCode(h.client.createCollection(docsSpec()), Code.AlreadyExists);
  });

  it("re-reads the catalog once for a collection it does not know yet", async () => {
    const fake = new FakeCluster();
    const h = await startGateway({ fake });
    await eventually(() => h.gateway.catalog.loaded);
    const before = fake.catalogReads;
    await expectCode(h.client.upsert({ collection: "nope", records: records(1) }), Code.NotFound, /collection "nope" does not exist/);
    expect(fake.catalogReads).toBe(before + 1);
    // Created through another gateway a moment ago: found (by the watch or by the re-read).
    fake.createCollection(
      (await import("@vecraft/model")).specToProto((await import("@vecraft/model")).validateCollectionSpec({ name: "fresh", dimension: DIM, metric: "l2" })),
    );
    const res = await h.client.upsert({ collection: "fresh", records: records(1) });
    expect(res.upserted).toBe(1);
  });
});

describe("when the meta-manager is down", () => {
  it("answers UNAVAILABLE naming it, and /readyz says not ready", async () => {
    const down = createClient(MetaService, createGrpcTransport({ baseUrl: "http://127.0.0.1:1" }));
    const h = await startGateway({ meta: down });
    const e = await expectCode(h.client.upsert({ collection: "docs", records: records(1) }), Code.Unavailable, /^meta-manager: /);
    expect(e.rawMessage).not.toMatch(/127\.0\.0\.1/);
    expect((await fetch(`${h.url}/readyz`)).status).toBe(503);
    expect(h.fake.appends).toHaveLength(0);
  });
});

describe("writes", () => {
  it("splits a batch by shard, groups shards by partition, and appends each group with the derived producer", async () => {
    const h = await startGateway();
    await withDocs(h);
    const token = h.fake.closedTs(0);
    const batch = records(20);
    const res = await h.client.upsert(
      { collection: "docs", records: batch, requestId: "req-A", sessionToken: token.toString() },
      { headers: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" } },
    );
    expect(res.upserted).toBe(20);
    expect(res.requestId).toBe("req-A");
    const appends = h.fake.appends;
    expect(appends.map((a) => a.partition).sort()).toEqual([0, 1]);
    for (const a of appends) {
      expect(a.producerId).toBe(producerIdOf("req-A"));
      expect(a.producerEpoch).toBe(0);
      expect(a.firstSeq).toBe(1n);
      expect(a.causalTs).toBe(token);
      const shards = a.entries.map((e) => (e.payload.case === "data" ? e.payload.value.shard : -1));
      expect(shards).toEqual([...shards].sort((x, y) => x - y));
      for (const e of a.entries) {
        if (e.payload.case !== "data") throw new Error("expected a DATA entry");
        const d = e.payload.value;
        expect(d.shard % 2).toBe(a.partition);
        expect(d).toMatchObject({ collection: "docs", requestId: "req-A", principal: "anonymous", traceId: "4bf92f3577b34da6a3ce929d0e0e4736" });
        for (const u of d.upserts) {
          expect(shardOf(u.id, 4)).toBe(d.shard);
          const original = batch.find((r) => r.id === u.id)!;
          expect([...new Float32Array(u.vectorF32.slice().buffer)]).toEqual(original.vector);
          expect(JSON.parse(u.metadataJson)).toEqual(original.metadata);
        }
      }
    }
    const shardsTouched = new Set(batch.map((r) => shardOf(r.id, 4))).size;
    expect(res.entries).toHaveLength(shardsTouched);
    const sorted = [...res.entries].sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : a.partition - b.partition));
    expect(res.entries).toEqual(sorted);
    for (const e of res.entries) expect(e.ts).toBeGreaterThan(token);
    expect(res.sessionToken).toBe(res.entries.reduce((m, e) => (e.ts > m ? e.ts : m), 0n).toString());
  });

  it("a retry with the same request_id returns the original entries, also through a restarted gateway", async () => {
    const fake = new FakeCluster();
    const h1 = await startGateway({ fake });
    await withDocs(h1);
    const first = await h1.client.upsert({ collection: "docs", records: records(10), requestId: "req-R" });
    const offsets = fake.logs.map((l) => l.length);
    const again = await h1.client.upsert({ collection: "docs", records: records(10), requestId: "req-R" });
    expect(again.entries).toEqual(first.entries);
    expect(again.sessionToken).toBe(first.sessionToken);
    await h1.gateway.stop();

    const h2 = await startGateway({ fake });
    const afterRestart = await h2.client.upsert({ collection: "docs", records: records(10), requestId: "req-R" });
    expect(afterRestart.entries).toEqual(first.entries);
    expect(fake.logs.map((l) => l.length)).toEqual(offsets);
    expect(fake.dataEntries()).toHaveLength(first.entries.length);

    // The same request id for a different batch is refused, not silently answered.
    await expectCode(
      h2.client.upsert({ collection: "docs", records: records(10, 100), requestId: "req-R" }),
      Code.AlreadyExists,
      /request_id was already used/,
    );
    const metrics = await (await fetch(`${h2.url}/metrics`)).text();
    expect(metrics).toMatch(/vecraft_gateway_write_retries_deduplicated_total\{op="upsert"\} [1-9]/);
  });

  it("makes up a request id when the client gives none, and echoes it", async () => {
    const h = await startGateway();
    await withDocs(h);
    const res = await h.client.upsert({ collection: "docs", records: records(3) });
    expect(res.requestId).toMatch(/^[0-9a-f-]{36}$/);
    for (const e of h.fake.dataEntries()) expect(e.payload.case === "data" && e.payload.value.requestId).toBe(res.requestId);
    const del = await h.client.delete({ collection: "docs", ids: ["r0", "never-existed"] });
    expect(del.deleted).toBe(2);
    expect(del.requestId).not.toBe(res.requestId);
    expect([...h.fake.records("docs").keys()].sort()).toEqual(["r1", "r2"]);
    const deletes = h.fake.dataEntries().flatMap((e) => (e.payload.case === "data" ? e.payload.value.deleteIds : []));
    expect(deletes.sort()).toEqual(["never-existed", "r0"]);
  });

  it("retries an append that found the journal unavailable, and a failed write completes on a retry", async () => {
    const h = await startGateway();
    await withDocs(h);
    h.fake.failNextAppend = Code.Unavailable;
    const res = await h.client.upsert({ collection: "docs", records: records(10), requestId: "req-U" });
    expect(res.upserted).toBe(10);
    expect(h.fake.appends).toHaveLength(3); // one refused, then one per partition

    h.fake.failNextAppend = Code.Internal;
    await expectCode(h.client.upsert({ collection: "docs", records: records(10, 50), requestId: "req-P" }), Code.Internal);
    const partial = h.fake.dataEntries().length;
    const done = await h.client.upsert({ collection: "docs", records: records(10, 50), requestId: "req-P" });
    expect(done.upserted).toBe(10);
    // Every record is in the journal exactly once.
    const ids = h.fake
      .dataEntries()
      .flatMap((e) => (e.payload.case === "data" && e.payload.value.requestId === "req-P" ? e.payload.value.upserts.map((u) => u.id) : []));
    expect(ids.sort()).toEqual(
      records(10, 50)
        .map((r) => r.id)
        .sort(),
    );
    expect(h.fake.dataEntries().length).toBeGreaterThan(partial);
  });

  it("rejects every bad batch with INVALID_ARGUMENT naming the item and field, and journals nothing", async () => {
    const h = await startGateway({ config: { maxBatchRecords: "10", maxBatchBytes: "2KiB" } });
    await withDocs(h);
    await h.client.createCollection({ name: "cos", dimension: DIM, metric: Metric.COSINE });
    const good = records(4);
    const withRecord = (i: number, patch: Record<string, unknown>): unknown[] => good.map((r, j) => (j === i ? { ...r, ...patch } : r));
    const cases: [string, unknown[], RegExp, string?][] = [
      ["dimension", withRecord(3, { vector: [1, 2, 3] }), /^records\[3\]\.vector: expected 4 dimensions, got 3$/],
      ["NaN", withRecord(0, { vector: [1, Number.NaN, 0, 0] }), /^records\[0\]\.vector\[1\]: NaN is not allowed/],
      ["Infinity", withRecord(2, { vector: [1, 0, Number.POSITIVE_INFINITY, 0] }), /^records\[2\]\.vector\[2\]: Infinity is not allowed/],
      [
        "zero vector under cosine",
        withRecord(1, { vector: [0, 0, 0, 0] }),
        /^records\[1\]\.vector: a zero vector has no direction under the cosine metric/,
        "cos",
      ],
      ["empty id", withRecord(1, { id: "" }), /^records\[1\]\.id: empty/],
      ["long id", withRecord(1, { id: "x".repeat(257) }), /^records\[1\]\.id: 257 bytes, at most 256/],
      ["duplicate id", withRecord(3, { id: "r0" }), /^records\[3\]\.id: duplicate of records\[0\]\.id "r0"/],
      ["metadata type", withRecord(1, { metadata: { year: "1999" } }), /^records\[1\]\.metadata\.year: expected int, got string/],
      ["metadata type (list)", withRecord(2, { metadata: { genre: ["a"] } }), /^records\[2\]\.metadata\.genre: expected string, got list/],
      ["too many records", records(11), /^records: 11 records, at most 10/],
      ["empty batch", [], /^records: the batch is empty/],
    ];
    for (const [name, batch, message, collection] of cases) {
      const e = await expectCode(
        h.client.upsert({ collection: collection ?? "docs", records: batch as ReturnType<typeof records> }),
        Code.InvalidArgument,
        message,
      ).catch((err: unknown) => {
        throw new Error(`${name}: ${String(err)}`);
      });
      expect(e.metadata.get("vecraft-field"), name).toBeTruthy();
    }
    // Too many bytes: 10 records of 64 dimensions in a 2 KiB budget.
    await h.client.createCollection({ name: "wide", dimension: 64, metric: Metric.L2 });
    await expectCode(
      h.client.upsert({ collection: "wide", records: Array.from({ length: 10 }, (_, i) => ({ id: `w${i}`, vector: vec(64, i) })) }),
      Code.InvalidArgument,
      /^records: the batch holds 2\d{3} bytes of ids, vectors and metadata, at most 2048/,
    );
    const deletes: [string[], RegExp][] = [
      [[], /^ids: the batch is empty/],
      [["a", ""], /^ids\[1\]: empty/],
      [["a", "b", "a"], /^ids\[2\]: duplicate of ids\[0\] "a"/],
      [Array.from({ length: 11 }, (_, i) => `d${i}`), /^ids: 11 ids, at most 10/],
    ];
    for (const [ids, message] of deletes) await expectCode(h.client.delete({ collection: "docs", ids }), Code.InvalidArgument, message);
    await expectCode(h.client.upsert({ collection: "docs", records: good, sessionToken: "yesterday" }), Code.InvalidArgument, /^session_token: malformed/);
    const future = ((BigInt(Date.now() + 60_000) << 16n) + 1n).toString();
    await expectCode(
      h.client.upsert({ collection: "docs", records: good, sessionToken: future }),
      Code.InvalidArgument,
      /^session_token: causal_ts is \d+ ms ahead/,
    );
    h.fake.appends.splice(0);
    await expectCode(h.client.upsert({ collection: "docs", records: good, requestId: "a\tb" }), Code.InvalidArgument, /^request_id: control characters/);
    await expectCode(h.client.upsert({ collection: "", records: good }), Code.InvalidArgument, /^collection: required/);
    expect(h.fake.appends).toHaveLength(0);
    expect(h.fake.dataEntries()).toHaveLength(0);

    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toContain('vecraft_gateway_validation_rejections_total{method="Upsert",kind="records.vector"}');
    expect(metrics).toContain('vecraft_gateway_validation_rejections_total{method="Upsert",kind="records.metadata"}');
    expect(metrics).toContain('vecraft_gateway_validation_rejections_total{method="Delete",kind="ids"}');
  });
});

describe("reads", () => {
  it("Search validates, passes the consistency on, and converts hits; session tokens flow from writes to reads", async () => {
    const h = await startGateway({ config: { defaultStalenessMs: "750ms" } });
    await withDocs(h);
    const w = await h.client.upsert({ collection: "docs", records: records(12) });
    const res = await h.client.search({
      collection: "docs",
      vector: vec(DIM, 3),
      k: 3,
      includeVectors: true,
      includeMetadata: true,
      consistency: { level: Consistency.SESSION, sessionToken: w.sessionToken },
    });
    expect(h.fake.searches[0]!.consistency).toMatchObject({ level: Consistency.SESSION, sessionToken: w.sessionToken });
    expect(res.readTs).toBe(BigInt(w.sessionToken));
    expect(res.sessionToken).toBe(w.sessionToken);
    expect(res.hits[0]!.id).toBe("r3");
    expect(res.hits[0]!.score).toBe(0);
    expect(res.hits[0]!.vector).toEqual(vec(DIM, 3));
    expect(res.hits[0]!.metadata).toEqual({ year: 2003, genre: "comedy" });
    expect(res.hits).toHaveLength(3);

    // The client's deadline goes downstream; without one, the configured default does.
    await h.client.search({ collection: "docs", vector: vec(DIM, 3), k: 1 }, { timeoutMs: 4_000 });
    const propagated = h.fake.searchDeadlines.at(-1)!;
    expect(propagated).toBeGreaterThan(3_000);
    expect(propagated).toBeLessThanOrEqual(4_000);
    expect(h.fake.searchDeadlines[0]).toBeGreaterThan(20_000);
    h.fake.searches.splice(1);
    // A deadline longer than the server allows is refused.
    await expectCode(h.client.search({ collection: "docs", vector: vec(DIM, 3), k: 1 }, { timeoutMs: 3_600_000 }), Code.InvalidArgument);

    // Defaults: BOUNDED at the configured staleness; no vectors or metadata unless asked.
    const plain = await h.client.search({ collection: "docs", vector: vec(DIM, 3), k: 2, filter: { genre: "drama" } });
    expect(h.fake.searches[1]!.consistency).toMatchObject({ level: Consistency.BOUNDED, stalenessMs: 750 });
    expect(h.fake.searches[1]!.filterJson).toBe('{"genre":"drama"}');
    expect(plain.hits.every((x) => x.vector.length === 0 && x.metadata === undefined)).toBe(true);
    expect(plain.readTs).toBeGreaterThan(0n);

    // An EVENTUAL read keeps the token presented: tokens never go back.
    const eventual = await h.client.search({
      collection: "docs",
      vector: vec(DIM, 1),
      k: 1,
      consistency: { level: Consistency.EVENTUAL, sessionToken: w.sessionToken },
    });
    expect(eventual.readTs).toBe(0n);
    expect(eventual.sessionToken).toBe(w.sessionToken);

    const bad: [Promise<unknown>, RegExp][] = [
      [h.client.search({ collection: "docs", vector: vec(DIM, 1), k: 0 }), /^k: 0 is out of range 1\.\.1000/],
      [h.client.search({ collection: "docs", vector: vec(DIM, 1), k: 1001 }), /^k: 1001/],
      [h.client.search({ collection: "docs", vector: [1, 2], k: 1 }), /^vector: expected 4 dimensions, got 2/],
      [h.client.search({ collection: "docs", vector: vec(DIM, 1), k: 5, ef: 2 }), /^ef: 2 is smaller than k/],
      [h.client.search({ collection: "docs", vector: vec(DIM, 1), k: 1, filter: { nope: 1 } }), /^filter\.nope: unknown field/],
      [h.client.search({ collection: "docs", vector: vec(DIM, 1), k: 1, filter: { year: { $near: 1 } } }), /^filter\.year\.\$near: unknown operator/],
      [h.client.search({ collection: "docs", vector: vec(DIM, 1), k: 1, consistency: { sessionToken: "abc" } }), /^consistency\.session_token: malformed/],
    ];
    for (const [p, message] of bad) await expectCode(p, Code.InvalidArgument, message);
    await expectCode(h.client.search({ collection: "nope", vector: vec(DIM, 1), k: 1 }), Code.NotFound, /collection "nope"/);
    expect(h.fake.searches).toHaveLength(3);
  });

  it("Get returns records in request order and lists the missing ids", async () => {
    const h = await startGateway();
    await withDocs(h);
    await h.client.upsert({ collection: "docs", records: records(5) });
    const res = await h.client.get({ collection: "docs", ids: ["r4", "zz", "r1", "r0"] });
    expect(res.records.map((r) => r.id)).toEqual(["r4", "r1", "r0"]);
    expect(res.records[0]!.vector).toEqual(vec(DIM, 4));
    expect(res.records[0]!.metadata).toEqual({ year: 2004, genre: "drama" });
    expect(res.missingIds).toEqual(["zz"]);
    expect(res.sessionToken).toBe(res.readTs.toString());
    await expectCode(h.client.get({ collection: "docs", ids: [] }), Code.InvalidArgument, /^ids: at least one id/);
    await expectCode(h.client.get({ collection: "docs", ids: ["a", "a"] }), Code.InvalidArgument, /^ids\[1\]: duplicate/);
  });

  it("Query pages by id with an opaque token; later pages never read older", async () => {
    const h = await startGateway();
    await withDocs(h);
    await h.client.upsert({ collection: "docs", records: records(25) });
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    let firstReadTs = 0n;
    do {
      const res = await h.client.query({ collection: "docs", filter: {}, limit: 10, pageToken });
      if (pages === 0) firstReadTs = res.readTs;
      seen.push(...res.records.map((r) => r.id));
      pageToken = res.nextPageToken;
      pages++;
    } while (pageToken !== "");
    expect(pages).toBe(3);
    expect(seen).toEqual(
      records(25)
        .map((r) => r.id)
        .sort(),
    );
    // Page 2 and 3 asked for at least the first page's read_ts.
    expect(h.fake.queries[1]!.consistency).toMatchObject({ level: Consistency.SESSION, sessionToken: firstReadTs.toString() });
    expect(h.fake.queries[1]!.afterId).toBe(seen[9]);

    const page1 = await h.client.query({ collection: "docs", filter: { genre: "drama" }, limit: 5 });
    expect(page1.records.every((r) => r.metadata?.["genre"] === "drama")).toBe(true);
    await expectCode(
      h.client.query({ collection: "docs", filter: { genre: "comedy" }, limit: 5, pageToken: page1.nextPageToken }),
      Code.InvalidArgument,
      /^page_token: the token belongs to another query/,
    );
    await expectCode(h.client.query({ collection: "docs", pageToken: "garbage" }), Code.InvalidArgument, /^page_token: not a page token/);
    await expectCode(h.client.query({ collection: "docs", limit: 1001 }), Code.InvalidArgument, /^limit: 1001/);
  });
});

describe("journal APIs", () => {
  it("GetRecordHistory returns every version oldest first, with who wrote it, paged", async () => {
    const h = await startGateway();
    await withDocs(h);
    const w1 = await h.client.upsert({ collection: "docs", records: [{ id: "a", vector: vec(DIM, 1), metadata: { year: 1 } }], requestId: "h-1" });
    await h.client.upsert({ collection: "docs", records: [{ id: "a", vector: vec(DIM, 2), metadata: { year: 2 } }], requestId: "h-2" });
    await h.client.delete({ collection: "docs", ids: ["a"], requestId: "h-3" });
    const all = await h.client.getRecordHistory({ collection: "docs", id: "a" });
    expect(all.versions.map((v) => [v.op, v.requestId, v.principal])).toEqual([
      [Op.UPSERT, "h-1", "anonymous"],
      [Op.UPSERT, "h-2", "anonymous"],
      [Op.DELETE, "h-3", "anonymous"],
    ]);
    expect(all.versions[0]!.ts).toBe(w1.entries[0]!.ts);
    expect(all.versions[1]!.vector).toEqual(vec(DIM, 2));
    expect(all.versions[1]!.metadata).toEqual({ year: 2 });
    expect(all.versions[2]!.vector).toEqual([]);
    expect(all.readTs).toBeGreaterThan(0n);
    expect(all.nextPageToken).toBe("");

    const p1 = await h.client.getRecordHistory({ collection: "docs", id: "a", limit: 2 });
    expect(p1.versions.map((v) => v.requestId)).toEqual(["h-1", "h-2"]);
    const p2 = await h.client.getRecordHistory({ collection: "docs", id: "a", limit: 2, pageToken: p1.nextPageToken });
    expect(p2.versions.map((v) => v.requestId)).toEqual(["h-3"]);
    expect(p2.nextPageToken).toBe("");
    await expectCode(
      h.client.getRecordHistory({ collection: "docs", id: "b", pageToken: p1.nextPageToken }),
      Code.InvalidArgument,
      /^page_token: the token belongs to another record/,
    );

    expect((await h.client.getRecordHistory({ collection: "docs", id: "never" })).versions).toEqual([]);
    await expectCode(h.client.getRecordHistory({ collection: "ghost", id: "a" }), Code.NotFound, /collection "ghost"/);
    await expectCode(h.client.getRecordHistory({ collection: "docs", id: "" }), Code.InvalidArgument, /^id: empty/);
    // A dropped collection keeps its history.
    await h.client.dropCollection({ name: "docs" });
    expect((await h.client.getRecordHistory({ collection: "docs", id: "a" })).versions).toHaveLength(3);
  });

  it("GetRequestLineage lists a request's entries and which shard replicas applied them", async () => {
    const h = await startGateway();
    await withDocs(h, { replicationFactor: 2 });
    const w = await h.client.upsert({ collection: "docs", records: records(8), requestId: "lin-1" });
    // storage-2 is behind on partition 1.
    h.fake.appliedCap.set("storage-2", new Map([[1, 1n]]));
    const res = await h.client.getRequestLineage({ requestId: "lin-1" });
    expect(res.requestId).toBe("lin-1");
    expect(res.entries.map((e) => e.position)).toEqual(w.entries);
    for (const e of res.entries) {
      expect(e.type).toBe(OperationType.WRITE);
      expect(e.collection).toBe("docs");
      expect(e.principal).toBe("anonymous");
      expect(e.upsertedIds.every((id) => shardOf(id, 4) === e.shard)).toBe(true);
      expect(e.replicas.map((r) => r.node).sort()).toEqual(["storage-1", "storage-2"]);
      for (const r of e.replicas) {
        const behind = r.node === "storage-2" && e.position!.partition === 1;
        expect(r.applied, `${r.node} p${e.position!.partition}`).toBe(!behind);
        expect(r.alive).toBe(true);
        expect(r.appliedOffset).toBe(behind ? 1n : h.fake.commitOffset(e.position!.partition));
      }
    }
    expect(res.entries.flatMap((e) => e.upsertedIds).sort()).toEqual(
      records(8)
        .map((r) => r.id)
        .sort(),
    );

    const ddl = await h.client.getRequestLineage({
      requestId: (await h.client.createCollection({ name: "other", dimension: 2, metric: Metric.IP, requestId: "ddl-1" })) && "ddl-1",
    });
    expect(ddl.entries.map((e) => e.type)).toEqual([OperationType.CREATE_COLLECTION]);
    await expectCode(h.client.getRequestLineage({ requestId: "nothing" }), Code.NotFound, /no journal entry has request_id "nothing"/);
    await expectCode(h.client.getRequestLineage({ requestId: "" }), Code.InvalidArgument, /^request_id: required/);
  });

  it("ListOperations pages in global order with a read_ts fixed by the first page", async () => {
    const h = await startGateway();
    await withDocs(h);
    for (let i = 0; i < 5; i++) await h.client.upsert({ collection: "docs", records: records(2, i * 2), requestId: `op-${i}` });
    await h.client.delete({ collection: "docs", ids: ["r0"], requestId: "op-del" });
    // Ticks close every partition past the writes (the read_ts is the smallest closed ts).
    h.fake.tick();
    const first = await h.client.listOperations({ collection: "docs", limit: 4 });
    expect(first.operations).toHaveLength(4);
    expect(first.operations[0]!.type).toBe(OperationType.CREATE_COLLECTION);
    expect(first.readTs).toBeGreaterThan(0n);
    // Written after the first page: not in later pages (paging is stable).
    await h.client.upsert({ collection: "docs", records: records(1, 99), requestId: "op-late" });
    const all = [...first.operations];
    let token = first.nextPageToken;
    while (token !== "") {
      const page = await h.client.listOperations({ collection: "docs", limit: 4, pageToken: token });
      expect(page.readTs).toBe(first.readTs);
      all.push(...page.operations);
      token = page.nextPageToken;
    }
    const positions = all.map((o) => [o.ts, o.partition, o.offset] as const);
    const sorted = [...positions].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]));
    expect(positions).toEqual(sorted);
    expect(all.some((o) => o.requestId === "op-late")).toBe(false);
    expect(all.filter((o) => o.type === OperationType.WRITE).every((o) => o.collection === "docs" && o.principal === "anonymous")).toBe(true);
    expect(all.find((o) => o.requestId === "op-del")).toMatchObject({ deletes: 1, upserts: 0 });
    await expectCode(
      h.client.listOperations({ collection: "other", limit: 4, pageToken: first.nextPageToken }),
      Code.InvalidArgument,
      /^page_token: the token belongs to another query/,
    );
    await expectCode(h.client.listOperations({ fromTs: 10n, toTs: 5n }), Code.InvalidArgument, /^to_ts: 5 is before from_ts 10/);
    await expectCode(h.client.listOperations({ limit: 5000 }), Code.InvalidArgument, /^limit: 5000/);
    const dropped = await h.client
      .dropCollection({ name: "docs", requestId: "op-drop" })
      .then(() => h.client.listOperations({ collection: "docs", limit: 1000 }));
    expect(dropped.operations.at(-1)?.type).toBe(OperationType.DROP_COLLECTION);
  });
});

describe("cluster status", () => {
  it("reports nodes, partitions and shard replicas with their lag", async () => {
    const h = await startGateway();
    await withDocs(h, { shards: 2 });
    await h.client.upsert({ collection: "docs", records: records(10) });
    h.fake.appliedCap.set("storage-2", new Map([[1, 1n]]));
    const st = await h.client.getClusterStatus({});
    expect(st.nodes.map((n) => [n.id, n.alive])).toEqual([
      ["storage-1", true],
      ["storage-2", true],
    ]);
    expect(st.partitions.map((p) => [p.partition, p.leader, p.commitOffset])).toEqual([
      [0, "journal-0", h.fake.commitOffset(0)],
      [1, "journal-0", h.fake.commitOffset(1)],
    ]);
    expect(st.partitions[0]!.closedTs).toBe(h.fake.closedTs(0));
    expect(st.shardReplicas.map((r) => [r.collection, r.shard, r.partition, r.node])).toEqual([
      ["docs", 0, 0, "storage-1"],
      ["docs", 1, 1, "storage-2"],
    ]);
    expect(st.shardReplicas[0]).toMatchObject({ appliedOffset: h.fake.commitOffset(0), lag: 0n, serving: true });
    expect(st.shardReplicas[1]).toMatchObject({ appliedOffset: 1n, lag: h.fake.commitOffset(1) - 1n, serving: true });
    h.fake.downNodes.add("storage-2");
    expect((await h.client.getClusterStatus({})).shardReplicas[1]!.serving).toBe(false);
  });

  it("takes partition leaders, epochs and replicas from the catalog's journal partition map when it has one", async () => {
    const h = await startGateway();
    // Partition 1 is not in the map (its node did not answer the meta-manager yet): the journal's own answer stands.
    h.fake.setJournalPartitions([{ partition: 0, leader: "journal-a", epoch: 7n, replicas: ["journal-a"], leaderAddress: "http://journal-a.test:7100" }]);
    const st = await h.client.getClusterStatus({});
    expect(st.partitions.map((p) => [p.partition, p.leader, p.epoch, p.replicas, p.commitOffset, p.closedTs])).toEqual([
      [0, "journal-a", 7, ["journal-a"], h.fake.commitOffset(0), h.fake.closedTs(0)],
      [1, "journal-0", 1, ["journal-0"], h.fake.commitOffset(1), h.fake.closedTs(1)],
    ]);
  });

  it("shows replicas of dead nodes and bootstrapping replicas as not serving, and every registered role", async () => {
    const h = await startGateway();
    await withDocs(h, { shards: 2 });
    h.fake.replicaStates.set("storage-1", ReplicaState.BOOTSTRAPPING);
    h.fake.replicaStates.set("storage-2", ReplicaState.SERVING);
    let st = await h.client.getClusterStatus({});
    expect(st.shardReplicas.map((r) => [r.node, r.serving])).toEqual([
      ["storage-1", false],
      ["storage-2", true],
    ]);
    h.fake.replicaStates.set("storage-1", ReplicaState.CATCHING_UP);
    // storage-2's lease expired: still listed, not alive, even though it still answers.
    h.fake.setNode({ id: "storage-2", address: "http://storage-2.test:7300", roles: [NodeRole.STORAGE], alive: false });
    h.fake.setNode({ id: "query-0", address: "http://query-0.test:7400", roles: [NodeRole.QUERY_PROCESSOR], alive: true });
    h.fake.setNode({ id: "journal-0", address: "http://journal.test:7100", roles: [NodeRole.JOURNAL], alive: true });
    st = await h.client.getClusterStatus({});
    expect(st.shardReplicas.map((r) => [r.node, r.serving])).toEqual([
      ["storage-1", false],
      ["storage-2", false],
    ]);
    expect(st.nodes.map((n) => [n.id, n.roles, n.alive])).toEqual([
      ["storage-1", [NodeRole.STORAGE], true],
      ["storage-2", [NodeRole.STORAGE], false],
      ["query-0", [NodeRole.QUERY_PROCESSOR], true],
      ["journal-0", [NodeRole.JOURNAL], true],
    ]);
    // The gateway registered itself (the fake meta-manager keeps no registry).
    await expect.poll(() => h.fake.registrations.map((n) => [n.id, n.roles])).toContainEqual(["gateway-0", [NodeRole.GATEWAY]]);
  });
});

describe("JSON over HTTP/1.1 (curl)", () => {
  it("speaks snake_case, writes uint64 as strings, and maps errors to HTTP statuses", async () => {
    const h = await startGateway();
    const created = await h.json("CreateCollection", {
      name: "docs",
      dimension: 3,
      metric: "METRIC_COSINE",
      fields: [{ name: "year", type: "FIELD_TYPE_INT" }],
    });
    expect(created.status).toBe(200);
    const col = created.body["collection"] as Record<string, unknown>;
    expect(col).toMatchObject({
      name: "docs",
      dimension: 3,
      metric: "METRIC_COSINE",
      shards: 1,
      replication_factor: 1,
      hnsw: { m: 16, ef_construction: 128, ef_search: 64 },
    });
    expect(typeof col["created_ts"]).toBe("string");

    const up = await h.json("Upsert", {
      collection: "docs",
      request_id: "curl-1",
      records: [
        { id: "a", vector: [1, 0, 0], metadata: { year: 2001, tags: ["x"] } },
        { id: "b", vector: [0, 1, 0] },
      ],
    });
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ upserted: 2, request_id: "curl-1" });
    expect(typeof up.body["session_token"]).toBe("string");
    const entries = up.body["entries"] as Record<string, unknown>[];
    expect(typeof entries[0]!["offset"]).toBe("string");
    expect(typeof entries[0]!["ts"]).toBe("string");

    const search = await h.json("Search", {
      collection: "docs",
      vector: [1, 0.1, 0],
      k: 1,
      include_metadata: true,
      consistency: { level: "CONSISTENCY_SESSION", session_token: up.body["session_token"] },
    });
    expect(search.status).toBe(200);
    expect(search.body["read_ts"]).toBe(up.body["session_token"]);
    expect(search.body["session_token"]).toBe(up.body["session_token"]);
    expect((search.body["hits"] as Record<string, unknown>[])[0]).toMatchObject({ id: "a", metadata: { year: 2001, tags: ["x"] } });

    const invalid = await h.json("Upsert", { collection: "docs", records: [{ id: "a", vector: [1, 2] }] });
    expect(invalid.status).toBe(400);
    expect(invalid.body).toMatchObject({ code: "invalid_argument", message: "records[0].vector: expected 3 dimensions, got 2" });
    const nan = await h.json("Upsert", { collection: "docs", records: [{ id: "a", vector: [1, "NaN", 0] }] });
    expect(nan.status).toBe(400);
    expect(nan.body["message"]).toMatch(/^records\[0\]\.vector\[1\]: NaN is not allowed/);
    const overflow = await h.json("Upsert", { collection: "docs", records: [{ id: "o", vector: [1, 1e39, 0] }] });
    expect(overflow.status).toBe(400);
    expect(overflow.body["code"]).toBe("invalid_argument");
    const zero = await h.json("Upsert", { collection: "docs", records: [{ id: "z", vector: [0, 0, 0] }] });
    expect(zero.body["message"]).toMatch(/zero vector/);
    const missing = await h.json("DescribeCollection", { name: "nope" });
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ code: "not_found", message: 'collection "nope" does not exist' });
    const malformed = await h.json("Upsert", '{"collection": "docs", "records": [');
    expect(malformed.status).toBe(400);
    expect(malformed.body["code"]).toBe("invalid_argument");
    const unknownField = await h.json("Upsert", { collection: "docs", recordz: [] });
    expect(unknownField.status).toBe(400);
    const badToken = await h.json("Get", { collection: "docs", ids: ["a"], consistency: { session_token: "nope" } });
    expect(badToken.status).toBe(400);
    expect(badToken.body["message"]).toMatch(/^consistency\.session_token: malformed/);
    expect(h.fake.dataEntries()).toHaveLength(1);

    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toContain('vecraft_rpc_duration_seconds_count{service="vecraft.v1.VecraftService",method="Upsert",code="ok"} 1');
    expect(metrics).toContain('vecraft_rpc_duration_seconds_count{service="vecraft.v1.VecraftService",method="Upsert",code="invalid_argument"}');
    expect(metrics).toContain('vecraft_gateway_rows_written_total{op="upsert"} 2');
    expect((await fetch(`${h.url}/readyz`)).status).toBe(200);
  });

  it("refuses requests above the transport's size limit with RESOURCE_EXHAUSTED", async () => {
    const h = await startGateway({ config: { maxRequestBytes: "4KiB" } });
    await withDocs(h);
    const big = await h.json("Upsert", { collection: "docs", records: records(200) });
    expect(big.status).toBe(429);
    expect(big.body["code"]).toBe("resource_exhausted");
    await expectCode(h.client.upsert({ collection: "docs", records: records(200) }), Code.ResourceExhausted);
    expect(h.fake.dataEntries()).toHaveLength(0);
  });
});
