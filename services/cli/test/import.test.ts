// `vecraft import` end to end against the fake VecraftService: batching, bounded
// concurrency, request ids, retries, error translation to file lines, progress output.
import { writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { silentLogger, startRpcServer } from "@vecraft/common";
import type { UpsertRequest } from "@vecraft/rpc";
import { explainRejection } from "../src/import/pipeline.js";
import type { FakeServer } from "./fake-server.js";
import { newFake, tempDir, vecraft, writeFvecs, writeNpy } from "./helpers.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => {
  await dir.cleanup();
});

function jsonl(n: number, dim = 3, bad?: (i: number) => string | undefined): string {
  return (
    Array.from(
      { length: n },
      (_, i) => bad?.(i) ?? JSON.stringify({ id: `r${i}`, vector: Array.from({ length: dim }, (_, k) => i + k + 1), metadata: { i } }),
    ).join("\n") + "\n"
  );
}

async function withCollection(dimension = 3): Promise<FakeServer> {
  const fake = newFake();
  const res = await vecraft(fake, ["collections", "create", "docs", "--dimension", String(dimension), "--metric", "l2"]);
  expect(res.code).toBe(0);
  return fake;
}

const upserts = (fake: FakeServer): UpsertRequest[] => fake.callsOf("Upsert").map((c) => c.request as unknown as UpsertRequest);

describe("vecraft import", () => {
  it("streams a JSONL file in batches with one request id each, and prints a summary", async () => {
    const fake = await withCollection();
    const file = dir.file("docs.jsonl");
    await writeFile(file, jsonl(1050));
    const res = await vecraft(fake, ["import", "docs", file, "--batch", "500", "--concurrency", "2"], { progressIntervalMs: 0 });
    expect(res.err).not.toMatch(/stopped/);
    expect(res.code).toBe(0);
    const sent = upserts(fake);
    expect(sent.map((u) => u.records.length).sort((a, b) => a - b)).toEqual([50, 500, 500]);
    const ids = sent.map((u) => u.requestId).sort();
    expect(ids[0]).toMatch(/^import-[0-9a-f-]{36}-000001$/);
    expect(ids.map((id) => id.slice(-6))).toEqual(["000001", "000002", "000003"]);
    expect(new Set(ids.map((id) => id.slice(0, -7))).size).toBe(1);
    expect(fake.collections.get("docs")!.records.size).toBe(1050);
    expect(fake.collections.get("docs")!.records.get("r7")!.metadata).toEqual({ i: 7 });

    expect(res.out).toContain('Imported 1,050 records in 3 batches into "docs" in ');
    expect(res.out).toContain(`Request ids: ${ids[0]} onwards`);
    expect(res.out).toContain(`Session token: ${fake.clock}`);
    // Not a terminal: plain progress lines (one per batch with a zero interval), no bar.
    const lines = res.err.trim().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines.every((l) => /^imported [0-9,]+ records \([0-9.]+%\), [0-9,]+ records\/s, ETA /.test(l))).toBe(true);
    expect(lines[2]).toMatch(/^imported 1,050 records \(100\.0%\)/);
    expect(res.err).not.toContain("\r");
  });

  it("keeps at most --concurrency batches in flight", async () => {
    const fake = await withCollection();
    fake.upsertDelayMs = 15;
    const file = dir.file("conc.jsonl");
    await writeFile(file, jsonl(100));
    const res = await vecraft(fake, ["import", "docs", file, "--batch", "10", "--concurrency", "3"]);
    expect(res.code).toBe(0);
    expect(upserts(fake)).toHaveLength(10);
    expect(fake.maxInFlight).toBeLessThanOrEqual(3);
    expect(fake.maxInFlight).toBeGreaterThan(1);
  });

  it("retries transient failures with the batch's request id, writing nothing twice", async () => {
    const fake = await withCollection();
    const unavailable = (): ConnectError => new ConnectError("journal partition 0 is electing a leader", Code.Unavailable);
    fake.failNext("Upsert", unavailable, unavailable);
    const file = dir.file("retry.jsonl");
    await writeFile(file, jsonl(30));
    const res = await vecraft(fake, ["import", "docs", file, "--batch", "10", "--concurrency", "1", "--verbose"]);
    expect(res.code).toBe(0);
    const ids = upserts(fake).map((u) => u.requestId);
    expect(ids).toHaveLength(5);
    expect(ids[0]).toBe(ids[1]);
    expect(ids[1]).toBe(ids[2]);
    expect(new Set(ids).size).toBe(3);
    expect(fake.operations.filter((o) => o.upserts > 0)).toHaveLength(3);
    expect(res.out).toContain("Imported 30 records in 3 batches");
    expect(res.out).toContain("Transient failures retried: 2.");
    expect(res.err).toContain("retrying Upsert (attempt 1 failed: journal partition 0 is electing a leader [unavailable])");
  });

  it("stops at the first rejected batch and names the file line of the record at fault", async () => {
    const fake = await withCollection();
    const file = dir.file("bad.jsonl");
    // Line 18 holds record r15 (blank lines at 4 and 9 above it), with a 2-d vector.
    const lines = jsonl(40, 3, (i) => (i === 15 ? JSON.stringify({ id: "r15", vector: [1, 2] }) : undefined)).split("\n");
    lines.splice(3, 0, "");
    lines.splice(8, 0, "   ");
    await writeFile(file, lines.join("\n"));
    const res = await vecraft(fake, ["import", "docs", file, "--batch", "5", "--concurrency", "1"]);
    expect(res.code).toBe(1);
    expect(res.err).toContain('vecraft import: stopped: line 18 (id "r15"): vector: expected 3 dimensions, got 2 [invalid_argument]');
    expect(res.err).toContain('Before stopping, imported 15 records in 3 batches into "docs"');
    // Nothing after the rejected batch (the 4th) was sent.
    expect(upserts(fake)).toHaveLength(4);
    expect(fake.collections.get("docs")!.records.size).toBe(15);
  });

  it("translates a duplicate id to both lines, and rows of binary files", async () => {
    const fake = await withCollection();
    const csv = dir.file("dup.csv");
    await writeFile(csv, ["id,vector,note", 'a,"[1,2,3]","two', 'lines"', 'b,"[1,2,3]",', 'a,"[4,5,6]",'].join("\n"));
    const dup = await vecraft(fake, ["import", "docs", csv]);
    expect(dup.code).toBe(1);
    expect(dup.err).toContain('stopped: line 5 (id "a"): id: duplicate of line 2 "a" [invalid_argument]');

    const npy = dir.file("nan.npy");
    await writeNpy(npy, [
      [1, 2, 3],
      [1, 2, 3],
      [1, 2, 3],
      [1, Number.NaN, 3],
    ]);
    const nan = await vecraft(fake, ["import", "docs", npy, "--id-prefix", "e"]);
    expect(nan.code).toBe(1);
    expect(nan.err).toContain('stopped: row 3 (id "e3"): vector[1]: not a finite number [invalid_argument]');

    const fvecs = dir.file("short.fvecs");
    await writeFvecs(fvecs, [
      [1, 2, 3],
      [1, 2],
    ]);
    const mixed = await vecraft(fake, ["import", "docs", fvecs]);
    expect(mixed.code).toBe(1);
    expect(mixed.err).toContain("stopped: row 1: dimension 2, but row 0 has 3");
  });

  it("reports a failure of the whole batch with its lines, without retrying what is not transient", async () => {
    const fake = await withCollection();
    fake.failNext("Upsert", () => new ConnectError("rate limit: 100 requests/s for key writer-key", Code.ResourceExhausted));
    const file = dir.file("limited.jsonl");
    await writeFile(file, jsonl(12));
    const res = await vecraft(fake, ["import", "docs", file, "--batch", "10", "--concurrency", "1"]);
    expect(res.code).toBe(1);
    expect(res.err).toContain("vecraft import: stopped: batch 1 (lines 1-10) failed: rate limit: 100 requests/s for key writer-key [resource_exhausted]");
    expect(upserts(fake)).toHaveLength(1);
  });

  it("stops at a line it cannot parse, after sending the batches before it", async () => {
    const fake = await withCollection();
    const file = dir.file("garbled.jsonl");
    await writeFile(
      file,
      jsonl(8, 3, (i) => (i === 6 ? "{not json" : undefined)),
    );
    const res = await vecraft(fake, ["import", "docs", file, "--batch", "3", "--concurrency", "1"]);
    expect(res.code).toBe(1);
    expect(res.err).toMatch(/vecraft import: stopped: line 7: invalid JSON/);
    expect(res.err).toContain("Before stopping, imported 6 records in 2 batches");
  });

  it("imports .npy and .fvecs files with ids from the row index", async () => {
    const fake = await withCollection(2);
    const npy = dir.file("emb.npy");
    await writeNpy(
      npy,
      [
        [0.5, 1],
        [2, 3],
      ],
      { version: 2 },
    );
    expect((await vecraft(fake, ["import", "docs", npy, "--id-prefix", "emb-"])).code).toBe(0);
    const fvecs = dir.file("base.fvecs");
    await writeFvecs(fvecs, [
      [7, 8],
      [9, 10],
      [11, 12],
    ]);
    expect((await vecraft(fake, ["import", "docs", fvecs])).code).toBe(0);
    const records = fake.collections.get("docs")!.records;
    expect([...records.keys()].sort()).toEqual(["0", "1", "2", "emb-0", "emb-1"]);
    expect(records.get("emb-0")!.vector).toEqual([0.5, 1]);
    expect(records.get("2")!.vector).toEqual([11, 12]);
  });

  it("draws a progress bar on a terminal and prints a JSON summary with --json", async () => {
    const fake = await withCollection();
    const file = dir.file("tty.jsonl");
    await writeFile(file, jsonl(20));
    const res = await vecraft(fake, ["import", "docs", file, "--batch", "10", "--json"], { tty: true });
    expect(res.code).toBe(0);
    expect(res.err).toContain("\r\x1b[2K[");
    expect(res.err).toMatch(/100\.0%\s+20 records/);
    expect(res.err.endsWith("\n")).toBe(true);
    const summary = JSON.parse(res.out) as Record<string, unknown>;
    expect(summary).toMatchObject({ collection: "docs", format: "jsonl", records: 20, batches: 2, retries: 0, sessionToken: fake.clock.toString() });
    expect(summary["requestIdPrefix"]).toMatch(/^import-/);
    expect(typeof summary["seconds"]).toBe("number");
    expect(typeof summary["recordsPerSecond"]).toBe("number");
  });

  it("rejects bad usage with exit code 2 and an unreadable file with 1", async () => {
    const fake = await withCollection();
    const unknown = await vecraft(fake, ["import", "docs", dir.file("data.parquet")]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain("cannot tell the format");
    expect((await vecraft(fake, ["import", "docs", dir.file("x.jsonl"), "--batch", "0"])).code).toBe(2);
    expect((await vecraft(fake, ["import", "docs", dir.file("x.jsonl"), "--format", "xml"])).code).toBe(2);
    expect((await vecraft(fake, ["import", "docs"])).err).toContain("missing FILE");
    const missing = await vecraft(fake, ["import", "docs", dir.file("nope.jsonl")]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/cannot read .*nope\.jsonl: no such file/);
  });

  it("works against a real server over HTTP/2 (gRPC) and HTTP/1.1 (Connect JSON)", async () => {
    const fake = newFake();
    const server = await startRpcServer({ routes: fake.routes, host: "127.0.0.1", port: 0, logger: silentLogger, ready: () => true });
    try {
      const env = { VECRAFT_URL: server.url };
      expect((await vecraft(undefined, ["collections", "create", "docs", "--dimension", "3", "--metric", "cosine"], { env })).code).toBe(0);
      const file = dir.file("real.jsonl");
      await writeFile(file, jsonl(25));
      const grpc = await vecraft(undefined, ["import", "docs", file, "--batch", "10"], { env });
      expect(grpc.code).toBe(0);
      expect(grpc.out).toContain("Imported 25 records in 3 batches");
      const connect = await vecraft(undefined, ["--protocol", "connect", "get", "docs", "r3", "--json"], { env });
      expect(connect.code).toBe(0);
      expect((JSON.parse(connect.out) as { records: { id: string }[] }).records[0]!.id).toBe("r3");
    } finally {
      await server.close(100);
    }
  });
});

describe("explainRejection", () => {
  const batch = {
    index: 4,
    bytes: 0,
    records: [
      { id: "a", vector: [1], loc: 40, end: 0 },
      { id: "b", vector: [1], loc: 42, end: 0 },
    ],
  };

  it("prefers the server's index detail, and rewrites other item references", () => {
    const e = new ConnectError("metadata.year: expected int, got string", Code.InvalidArgument, { "vecraft-index": "1" });
    expect(explainRejection(e, batch, { unit: "line" })).toBe('line 42 (id "b"): metadata.year: expected int, got string [invalid_argument]');
    const dup = new ConnectError('records[1].id: duplicate of records[0].id "a"', Code.InvalidArgument);
    expect(explainRejection(dup, batch, { unit: "row" })).toBe('row 42 (id "b"): id: duplicate of row 40 "a" [invalid_argument]');
  });

  it("names the batch's span when no item is named, or the index is out of range", () => {
    const e = new ConnectError('collection "docs" does not exist', Code.NotFound);
    expect(explainRejection(e, batch, { unit: "line" })).toBe('batch 4 (lines 40-42) failed: collection "docs" does not exist [not_found]');
    const odd = new ConnectError("records[9].id: empty", Code.InvalidArgument);
    expect(explainRejection(odd, batch, { unit: "row" })).toBe("batch 4 (rows 40-42) was rejected: records[9].id: empty [invalid_argument]");
  });
});
