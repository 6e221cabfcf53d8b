// StorageService over a real HTTP/2 server (the journal is the in-memory fake): reads with
// read targets, filters in the public language, validation, status and /metrics.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createLogger, silentLogger } from "@vecraft/common";
import { FieldType, MetaService, StorageService } from "@vecraft/rpc";
import { loadStorageConfig, start } from "../src/index.js";
import { FakeJournal } from "./fake-journal.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const f32 = (v: number[]): Uint8Array => new Uint8Array(Float32Array.from(v).buffer);

async function setup() {
  const dir = await mkdtemp(join(tmpdir(), "vecraft-storage-svc-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const journal = new FakeJournal(1);
  journal.createCollection(0, { name: "c", dimension: 2 }, [0]);
  const config = loadStorageConfig({ argv: ["--data-dir", dir, "--port", "0", "--partitions", "0", "--shutdown-grace-ms", "100"], env: {} });
  const running = await start(config, { logger: silentLogger, journal: journal.client() });
  cleanups.push(() => running.stop());
  const client = createClient(StorageService, createGrpcTransport({ baseUrl: running.url }));
  return { journal, running, client };
}

describe("StorageService", () => {
  it("searches, gets and pages after the read target, with filters in the public language", async () => {
    const { journal, client, running } = await setup();
    const w = journal.write(0, "c", 0, [
      { id: "a", vector: [1, 0], metadata: { genre: "drama" } },
      { id: "b", vector: [0, 1], metadata: { genre: "comedy" } },
      { id: "c", vector: [0.9, 0.1], metadata: { genre: "drama" } },
    ]);
    const read = { minOffset: w.offset, waitMs: 2000 };
    const res = await client.searchShard({ collection: "c", shard: 0, vectorF32: f32([1, 0]), k: 2, read, includeMetadata: true });
    expect(res.hits.map((h) => h.id)).toEqual(["a", "c"]);
    expect(JSON.parse(res.hits[0]!.metadataJson)).toEqual({ genre: "drama" });
    expect(res.applied?.offset).toBeGreaterThanOrEqual(w.offset);
    // The collection in the fake declares no fields: a filter naming one is rejected, clearly.
    await expect(client.searchShard({ collection: "c", shard: 0, vectorF32: f32([1, 0]), k: 2, read, filterJson: '{"genre":"drama"}' })).rejects.toMatchObject({
      code: Code.InvalidArgument,
    });
    const got = await client.getShardRecords({ collection: "c", shard: 0, ids: ["b", "zz", "a"], read });
    expect(got.records.map((r) => r.id)).toEqual(["b", "a"]);
    const page = await client.queryShard({ collection: "c", shard: 0, limit: 2, afterId: "a", read });
    expect(page.records.map((r) => r.id)).toEqual(["b", "c"]);
    const status = await client.getStorageStatus({});
    expect(status.shards[0]).toMatchObject({ collection: "c", shard: 0, records: 3n, indexed: 3n });
    const metrics = await (await fetch(`${running.url}/metrics`)).text();
    expect(metrics).toMatch(/vecraft_storage_applied_offset\{partition="0"/);
    expect(metrics).toMatch(/vecraft_storage_index_restore_rows/);
  });

  it("filters on declared fields, and rejects bad requests naming the problem", async () => {
    const { journal, client } = await setup();
    journal.createCollection(0, { name: "typed", dimension: 2, fields: [{ name: "year", type: FieldType.INT, indexed: true }] }, [0]);
    const w = journal.write(0, "typed", 0, [
      { id: "old", vector: [1, 0], metadata: { year: 1990 } },
      { id: "new", vector: [1, 0.1], metadata: { year: 2020 } },
    ]);
    const read = { minOffset: w.offset, waitMs: 2000 };
    const res = await client.searchShard({ collection: "typed", shard: 0, vectorF32: f32([1, 0]), k: 5, read, filterJson: '{"year":{"$gte":2000}}' });
    expect(res.hits.map((h) => h.id)).toEqual(["new"]);
    const cases: [Promise<unknown>, Code, RegExp][] = [
      [client.searchShard({ collection: "typed", shard: 0, vectorF32: f32([1, 0, 0]), k: 5, read }), Code.InvalidArgument, /expected 2 dimensions, got 3/],
      [client.searchShard({ collection: "typed", shard: 0, vectorF32: f32([1, 0]), k: 0, read }), Code.InvalidArgument, /k: must be between 1 and 1000/],
      [client.searchShard({ collection: "typed", shard: 0, vectorF32: f32([1, 0]), k: 1, read, filterJson: "{nope" }), Code.InvalidArgument, /filter: not valid JSON/],
      [client.searchShard({ collection: "nope", shard: 0, vectorF32: f32([1, 0]), k: 1, read }), Code.NotFound, /not hosted/],
      [client.getShardRecords({ collection: "typed", shard: 0, ids: ["old"], read: { minOffset: 999n, waitMs: 50 } }), Code.DeadlineExceeded, /rather than answer from older data/],
    ];
    for (const [p, code, msg] of cases) {
      const err = await p.then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(code);
      expect(err?.rawMessage).toMatch(msg);
    }
  });

  it("answers reads only for the incarnation (uid) it hosts, and reports that uid", async () => {
    const { journal, client, running } = await setup();
    journal.createCollection(0, { name: "re", dimension: 2 }, [0], { uid: "uid-a" });
    const w = journal.write(0, "re", 0, [{ id: "x", vector: [1, 0] }]);
    const read = { minOffset: w.offset, waitMs: 2000 };
    // The right uid, and none (an older query processor), are answered.
    for (const uid of ["uid-a", ""]) {
      expect((await client.searchShard({ collection: "re", uid, shard: 0, vectorF32: f32([1, 0]), k: 1, read })).hits.map((h) => h.id)).toEqual(["x"]);
      expect((await client.getShardRecords({ collection: "re", uid, shard: 0, ids: ["x"], read })).records.map((r) => r.id)).toEqual(["x"]);
      expect((await client.queryShard({ collection: "re", uid, shard: 0, limit: 10, read })).records.map((r) => r.id)).toEqual(["x"]);
    }
    // Another incarnation's read (the collection dropped and recreated elsewhere) is NOT_FOUND.
    const wrong: Promise<unknown>[] = [
      client.searchShard({ collection: "re", uid: "uid-b", shard: 0, vectorF32: f32([1, 0]), k: 1, read }),
      client.getShardRecords({ collection: "re", uid: "uid-b", shard: 0, ids: ["x"], read }),
      client.queryShard({ collection: "re", uid: "uid-b", shard: 0, limit: 10, read }),
    ];
    for (const p of wrong) {
      const err = await p.then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.NotFound);
      expect(err?.rawMessage).toBe(
        `storage node ${running.node.nodeId} hosts shard 0 of collection re incarnation uid-a, not uid-b (dropped and recreated?); read another replica`,
      );
    }
    const status = await client.getStorageStatus({});
    expect(status.shards.find((s) => s.collection === "re")).toMatchObject({ shard: 0, uid: "uid-a" });
    expect(status.shards.find((s) => s.collection === "c")?.uid).toBe("");
  });
});

describe("storage node startup", () => {
  it("takes its registration lease before restoring shard indexes", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vecraft-storage-svc-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const journal = new FakeJournal(1);
    journal.createCollection(0, { name: "c", dimension: 2 }, [0]);
    for (let i = 0; i < 2000; i += 100) journal.write(0, "c", 0, Array.from({ length: 100 }, (_, k) => ({ id: `r${i + k}`, vector: [Math.cos(i + k), Math.sin(i + k)] })));
    const config = loadStorageConfig({ argv: ["--data-dir", dir, "--port", "0", "--partitions", "0", "--shutdown-grace-ms", "100"], env: {} });
    const first = await start(config, { logger: silentLogger, journal: journal.client() });
    await first.node.waitFor(0, { minOffset: journal.logs.get(0)!.length, minTs: 0n }, 10_000, new AbortController().signal);
    await first.stop();
    // No index checkpoint: the restart rebuilds the index from SQLite (the slow path).
    const shardDir = join(dir, "storage", "c.1", "shard-0");
    for (const f of await readdir(shardDir)) if (f.startsWith("index.usearch")) await rm(join(shardDir, f));

    const events: string[] = [];
    const meta = createClient(
      MetaService,
      createRouterTransport(({ service }) => {
        service(MetaService, {
          registerNode: () => {
            events.push("registered");
            return { leaseId: "1" };
          },
          heartbeat: () => ({ alive: true }),
        });
      }),
    );
    const logger = createLogger({ name: "s", level: "info", stream: { write: (line: string) => events.push((JSON.parse(line) as { msg: string }).msg) } });
    const running = await start(config, { logger, journal: journal.client(), meta });
    cleanups.push(() => running.stop());
    expect(events.indexOf("registered")).toBeGreaterThanOrEqual(0);
    expect(events.indexOf("registered")).toBeLessThan(events.indexOf("shard opened"));
    expect((await fetch(`${running.url}/readyz`)).ok).toBe(true);
  });
});
