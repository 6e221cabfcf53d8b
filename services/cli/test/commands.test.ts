// Each command's output, run in-process against the fake VecraftService.
import { writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { Consistency, FieldType, Metric } from "@vecraft/rpc";
import type { CreateCollectionRequest, ListOperationsRequest, ReadConsistency, SearchRequest } from "@vecraft/rpc";
import { DEFAULT_COMMANDS } from "../src/index.js";
import type { CommandSpec } from "../src/index.js";
import { BASE_TS } from "./fake-server.js";
import type { FakeServer } from "./fake-server.js";
import { newFake, tempDir, vecraft, writeNpy } from "./helpers.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => {
  await dir.cleanup();
});

/** A collection "docs" (dimension 3, l2) with five records. */
async function seeded(): Promise<FakeServer> {
  const fake = newFake();
  expect((await vecraft(fake, ["collections", "create", "docs", "--dimension", "3", "--metric", "l2", "--field", "genre:string:indexed"])).code).toBe(0);
  const file = dir.file(`seed-${Math.random()}.jsonl`);
  const genres = ["drama", "comedy", "drama", "news", "drama"];
  await writeFile(file, genres.map((genre, i) => JSON.stringify({ id: `d${i}`, vector: [i, i, i], metadata: { genre, n: i } })).join("\n"));
  expect((await vecraft(fake, ["import", "docs", file])).code).toBe(0);
  return fake;
}

describe("collections", () => {
  it("creates a collection from flags", async () => {
    const fake = newFake();
    const res = await vecraft(fake, [
      "collections",
      "create",
      "movies",
      "--dimension",
      "128",
      "--metric",
      "cosine",
      "--shards",
      "4",
      "--replication",
      "2",
      "--m",
      "32",
      "--ef-construction",
      "200",
      "--ef-search",
      "100",
      "--field",
      "genre:string:indexed",
      "--field",
      "year:int",
      "--field",
      "tags:string_list",
    ]);
    expect(res).toEqual({ code: 0, out: 'Created collection "movies" (dimension 128, cosine, 4 shards, replication 2).\n', err: "" });
    const req = fake.callsOf("CreateCollection")[0]!.request as unknown as CreateCollectionRequest;
    expect(req).toMatchObject({ name: "movies", dimension: 128, metric: Metric.COSINE, shards: 4, replicationFactor: 2 });
    expect([req.hnsw?.m, req.hnsw?.efConstruction, req.hnsw?.efSearch]).toEqual([32, 200, 100]);
    expect(req.fields.map((f) => [f.name, f.type, f.indexed])).toEqual([
      ["genre", FieldType.STRING, true],
      ["year", FieldType.INT, false],
      ["tags", FieldType.STRING_LIST, false],
    ]);
  });

  it("rejects bad flags with exit code 2 before calling the server", async () => {
    const fake = newFake();
    const cases: [string[], string][] = [
      [["collections", "create", "x", "--metric", "l2"], "--dimension is required"],
      [["collections", "create", "x", "--dimension", "0", "--metric", "l2"], "--dimension must be >= 1, got 0"],
      [["collections", "create", "x", "--dimension", "3", "--metric", "hamming"], '--metric must be cosine, l2 or ip, got "hamming"'],
      [["collections", "create", "x", "--dimension", "3", "--metric", "l2", "--field", "a:date"], '--field a: unknown type "date"'],
      [["collections", "create", "x", "--dimension", "3", "--metric", "l2", "--field", "a:int:unique"], 'the third part can only be "indexed"'],
      [["collections", "create", "--dimension", "3", "--metric", "l2"], "missing NAME"],
      [["collections", "create", "x", "y", "--dimension", "3", "--metric", "l2"], 'unexpected argument "y"'],
      [["collections", "create", "x", "--dimension", "3", "--metric", "l2", "--bogus"], "Unknown option '--bogus'"],
    ];
    for (const [argv, message] of cases) {
      const res = await vecraft(fake, argv);
      expect(res.code, argv.join(" ")).toBe(2);
      expect(res.err).toContain(message);
      expect(res.err).toContain("Run 'vecraft collections create --help' for details.");
      expect(res.out).toBe("");
    }
    expect(fake.calls).toEqual([]);
  });

  it("reports server errors on one line with exit code 1", async () => {
    const fake = newFake();
    await vecraft(fake, ["collections", "create", "docs", "--dimension", "3", "--metric", "l2"]);
    const again = await vecraft(fake, ["collections", "create", "docs", "--dimension", "3", "--metric", "l2"]);
    expect(again).toEqual({ code: 1, out: "", err: 'vecraft collections create: collection "docs" already exists [already_exists]\n' });
    const bad = await vecraft(fake, ["collections", "create", "9lives", "--dimension", "3", "--metric", "l2"]);
    expect(bad.code).toBe(1);
    expect(bad.err).toBe('vecraft collections create: name: "9lives" must match [a-zA-Z][a-zA-Z0-9_-]{0,63} [invalid_argument]\n');
  });

  it("lists collections as a table or JSON", async () => {
    const fake = newFake();
    expect((await vecraft(fake, ["collections", "list"])).out).toBe("No collections.\n");
    await vecraft(fake, ["collections", "create", "docs", "--dimension", "3", "--metric", "l2", "--field", "genre:string:indexed"]);
    await vecraft(fake, ["collections", "create", "movies", "--dimension", "1536", "--metric", "ip", "--shards", "12"]);
    const res = await vecraft(fake, ["collections", "list"]);
    expect(res.out).toBe(
      [
        "NAME    DIMENSION  METRIC  SHARDS  REPLICAS  FIELDS",
        "docs            3  l2           1         1  genre:string:indexed",
        "movies       1536  ip          12         1  -",
        "",
      ].join("\n"),
    );
    const json = JSON.parse((await vecraft(fake, ["collections", "list", "--json"])).out) as { name: string; createdTs: string }[];
    expect(json.map((c) => c.name)).toEqual(["docs", "movies"]);
    expect(json[0]!.createdTs).toBe((BASE_TS + (1n << 16n)).toString());
  });

  it("describes a collection with its fields and shard statistics", async () => {
    const fake = await seeded();
    const res = await vecraft(fake, ["collections", "describe", "docs"]);
    expect(res.code).toBe(0);
    expect(res.out).toBe(
      [
        "name:        docs",
        "dimension:   3",
        "metric:      l2",
        "shards:      1",
        "replication: 1",
        "hnsw:        m=16 ef_construction=128 ef_search=64",
        `created:     2025-01-01T00:00:00.001Z (ts ${BASE_TS + (1n << 16n)})`,
        "records:     5",
        "",
        "FIELD  TYPE    INDEXED",
        "genre  string  yes",
        "",
        "SHARD  PARTITION  RECORDS  APPLIED OFFSET  APPLIED AT                NODE",
        "    0          0        5              10  2025-01-01T00:00:00.002Z  storage-1",
        "",
      ].join("\n"),
    );
    const missing = await vecraft(fake, ["collections", "describe", "nope"]);
    expect(missing).toEqual({ code: 1, out: "", err: 'vecraft collections describe: collection "nope" does not exist [not_found]\n' });
  });

  it("drops with --yes, asks on a terminal, and refuses without a terminal", async () => {
    const fake = newFake();
    await vecraft(fake, ["collections", "create", "a", "--dimension", "3", "--metric", "l2"]);
    await vecraft(fake, ["collections", "create", "b", "--dimension", "3", "--metric", "l2"]);

    const refused = await vecraft(fake, ["collections", "drop", "a"]);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain('refusing to drop "a" without --yes');

    const questions: string[] = [];
    const wrong = await vecraft(fake, ["collections", "drop", "a"], { prompt: (q) => (questions.push(q), Promise.resolve("b")) });
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain("not confirmed; nothing was dropped");
    expect(questions[0]).toContain('Drop collection "a" and all its records?');
    expect(fake.callsOf("DropCollection")).toHaveLength(0);

    expect(await vecraft(fake, ["collections", "drop", "a"], { prompt: () => Promise.resolve("a\n") })).toEqual({
      code: 0,
      out: 'Dropped collection "a".\n',
      err: "",
    });
    expect(await vecraft(fake, ["collections", "drop", "b", "--yes", "--json"])).toEqual({ code: 0, out: '{\n  "dropped": "b"\n}\n', err: "" });
    expect([...fake.collections.keys()]).toEqual([]);
  });
});

describe("search", () => {
  it("prints the hits as a table, best first", async () => {
    const fake = await seeded();
    const res = await vecraft(fake, ["search", "docs", "--vector", "[1, 1, 1.2]", "--k", "3"]);
    expect(res.code).toBe(0);
    expect(res.out).toBe(
      [
        "RANK  ID     SCORE  METADATA",
        '   1  d1       0.2  {"genre":"comedy","n":1}',
        '   2  d2  1.624808  {"genre":"drama","n":2}',
        '   3  d0  1.854724  {"genre":"drama","n":0}',
        "",
      ].join("\n"),
    );
    const req = fake.callsOf("Search")[0]!.request as unknown as SearchRequest;
    expect(req).toMatchObject({ k: 3, includeMetadata: true, includeVectors: false, ef: 0 });
    expect(req.vector.map((x) => Math.round(x * 10) / 10)).toEqual([1, 1, 1.2]);
  });

  it("passes a filter, ef and the consistency flags; --json prints the result", async () => {
    const fake = await seeded();
    const res = await vecraft(fake, [
      "--consistency",
      "bounded",
      "--staleness-ms",
      "250",
      "search",
      "docs",
      "--vector",
      "0 0 0",
      "--filter",
      '{"genre": "drama"}',
      "--ef",
      "40",
      "--json",
      "--include-vectors",
    ]);
    expect(res.code).toBe(0);
    const out = JSON.parse(res.out) as { hits: { id: string; vector: number[] }[]; readTs: string; sessionToken: string };
    expect(out.hits.map((h) => h.id)).toEqual(["d0", "d2", "d4"]);
    expect(out.hits[1]!.vector).toEqual([2, 2, 2]);
    expect(out.readTs).toBe(fake.clock.toString());
    const req = fake.callsOf("Search")[0]!.request as unknown as SearchRequest;
    expect(req.filter).toEqual({ genre: "drama" });
    expect(req.ef).toBe(40);
    expect(req.consistency).toMatchObject({ level: Consistency.BOUNDED, stalenessMs: 250 });
  });

  it("sends the session token with session consistency, from the flag or the environment", async () => {
    const fake = await seeded();
    await vecraft(fake, ["search", "docs", "--vector", "[0,0,0]", "--consistency", "session", "--session-token", "12345"]);
    await vecraft(fake, ["search", "docs", "--vector", "[0,0,0]", "--consistency", "SESSION"], { env: { VECRAFT_SESSION_TOKEN: "777" } });
    const sent = fake.callsOf("Search").map((c) => (c.request as { consistency: ReadConsistency }).consistency);
    expect(sent.map((c) => [c.level, c.sessionToken])).toEqual([
      [Consistency.SESSION, "12345"],
      [Consistency.SESSION, "777"],
    ]);
    const bad = await vecraft(fake, ["search", "docs", "--vector", "[0,0,0]", "--consistency", "linearizable"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--consistency must be eventual, bounded, session or strong");
  });

  it("reads the query vector from a file", async () => {
    const fake = await seeded();
    const json = dir.file("q.json");
    await writeFile(json, "[4, 4, 4]\n");
    expect((await vecraft(fake, ["search", "docs", "--vector-file", json, "--k", "1"])).out).toContain("   1  d4      0  ");
    const npy = dir.file("q.npy");
    await writeNpy(npy, [[3, 3, 3.1]]);
    expect((await vecraft(fake, ["search", "docs", "--vector-file", npy, "--k", "1", "--no-metadata"])).out).toBe("RANK  ID  SCORE\n   1  d3    0.1\n");
  });

  it("explains a bad vector or filter with exit code 2, and a server rejection with 1", async () => {
    const fake = await seeded();
    const cases: [string[], string][] = [
      [["search", "docs"], "give the query vector with either --vector or --vector-file"],
      [["search", "docs", "--vector", "[1, 2,"], "--vector is not a JSON array"],
      [["search", "docs", "--vector", '[1, "a"]'], '--vector[1] is not a number: "a"'],
      [["search", "docs", "--vector", "[1,1,1]", "--filter", "[1]"], "--filter must be a JSON object"],
      [["search", "docs", "--vector", "[1,1,1]", "--k", "5000"], "--k must be <= 1000, got 5000"],
    ];
    for (const [argv, message] of cases) {
      const res = await vecraft(fake, argv);
      expect(res.code, argv.join(" ")).toBe(2);
      expect(res.err).toContain(message);
    }
    const dim = await vecraft(fake, ["search", "docs", "--vector", "[1, 1]"]);
    expect(dim).toEqual({ code: 1, out: "", err: "vecraft search: vector: expected 3 dimensions, got 2 [invalid_argument]\n" });
  });
});

describe("get, history, lineage, ops", () => {
  it("gets records, and exits 1 naming the ids that do not exist", async () => {
    const fake = await seeded();
    const res = await vecraft(fake, ["get", "docs", "d1", "d3"]);
    expect(res).toEqual({
      code: 0,
      out: ["ID  VECTOR     METADATA", 'd1  [1, 1, 1]  {"genre":"comedy","n":1}', 'd3  [3, 3, 3]  {"genre":"news","n":3}', ""].join("\n"),
      err: "",
    });
    const partial = await vecraft(fake, ["get", "docs", "d1", "zz", "yy"]);
    expect(partial.code).toBe(1);
    expect(partial.out).toContain("d1  [1, 1, 1]");
    expect(partial.err).toBe("not found: zz, yy\n");
    expect((await vecraft(fake, ["get", "docs"])).err).toContain("missing ID");
  });

  it("shows a record's history across pages", async () => {
    const fake = await seeded();
    const file = dir.file("update.jsonl");
    await writeFile(file, JSON.stringify({ id: "d1", vector: [9, 9, 9], metadata: { genre: "horror" } }));
    await vecraft(fake, ["import", "docs", file]);
    const res = await vecraft(fake, ["history", "docs", "d1"]);
    expect(res.code).toBe(0);
    const lines = res.out.trim().split("\n");
    expect(lines[0]).toMatch(/^TS\s+TIME\s+OP\s+POSITION\s+REQUEST\s+PRINCIPAL\s+VECTOR\s+METADATA$/);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^\d+\s+2025-01-01T00:00:00\.002Z\s+upsert\s+0:2\s+import-\S+-000001\s+anonymous\s+\[1, 1, 1\]\s+\{"genre":"comedy","n":1\}$/);
    expect(lines[2]).toMatch(/upsert\s+0:3\s+import-\S+-000001\s+anonymous\s+\[9, 9, 9\]\s+\{"genre":"horror"\}$/);
    expect(fake.callsOf("GetRecordHistory")).toHaveLength(2);
    expect((await vecraft(fake, ["history", "docs", "never"])).out).toBe('No history for "never" in "docs".\n');
    const json = JSON.parse((await vecraft(fake, ["history", "docs", "d1", "--json"])).out) as { op: string; ts: string }[];
    expect(json.map((v) => v.op)).toEqual(["upsert", "upsert"]);
    expect(typeof json[0]!.ts).toBe("string");
  });

  it("shows a request's lineage with replica progress", async () => {
    const fake = await seeded();
    const requestId = fake.operations[1]!.requestId;
    const res = await vecraft(fake, ["lineage", requestId]);
    expect(res.code).toBe(0);
    expect(res.out).toContain(`request: ${requestId}\nentries: 1\n`);
    expect(res.out).toMatch(/POSITION\s+TS\s+TYPE\s+COLLECTION\s+SHARD\s+UPSERTS\s+DELETES\s+PRINCIPAL\s+REPLICAS/);
    expect(res.out).toMatch(/0:2\s+\d+\s+write\s+docs\s+0\s+5\s+0\s+writer-key\s+storage-1:applied storage-2:pending\(down\)/);
    const missing = await vecraft(fake, ["lineage", "nope"]);
    expect(missing).toEqual({ code: 1, out: "", err: 'vecraft lineage: no journal entry has request_id "nope" [not_found]\n' });
  });

  it("lists operations with filters, a limit across pages, and a hint to continue", async () => {
    const fake = await seeded();
    for (let i = 0; i < 3; i++) {
      const file = dir.file(`ops-${i}.jsonl`);
      await writeFile(file, JSON.stringify({ id: `o${i}`, vector: [1, 2, 3] }));
      await vecraft(fake, ["import", "docs", file]);
    }
    const all = await vecraft(fake, ["ops", "--collection", "docs"]);
    expect(all.code).toBe(0);
    const lines = all.out.trim().split("\n");
    expect(lines[0]).toMatch(/^TS\s+TIME\s+TYPE\s+COLLECTION\s+SHARD\s+POSITION\s+REQUEST\s+PRINCIPAL\s+UPSERTS\s+DELETES$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[2])).toEqual(["create_collection", "write", "write", "write", "write"]);
    expect(lines[1]).toMatch(/2025-01-01T00:00:00\.001Z\s+create_collection\s+docs\s+-\s+0:1/);

    const limited = await vecraft(fake, ["ops", "--collection", "docs", "--limit", "2", "--principal", "writer-key"]);
    expect(limited.out.trim().split("\n")).toHaveLength(3);
    const third = fake.operations[3]!;
    expect(limited.err).toBe(`(more operations: continue with --from-ts ${fake.operations[2]!.ts + 1n})\n`);
    const req = fake.callsOf("ListOperations").at(-1)!.request as unknown as ListOperationsRequest;
    expect(req).toMatchObject({ collection: "docs", principal: "writer-key", limit: 2 });

    const from = await vecraft(fake, ["ops", "--from-ts", String(third.ts), "--json"]);
    expect((JSON.parse(from.out) as { ts: string }[]).map((o) => o.ts)).toEqual(fake.operations.slice(3).map((o) => o.ts.toString()));
    const iso = await vecraft(fake, ["ops", "--from-ts", "2025-01-01T00:00:00.004Z", "--json"]);
    expect((JSON.parse(iso.out) as unknown[]).length).toBe(fake.operations.length - 3);
    expect((await vecraft(fake, ["ops", "--from-ts", "yesterday"])).code).toBe(2);
    expect((await vecraft(fake, ["ops", "--collection", "none"])).out).toBe("No operations.\n");
  });
});

describe("status", () => {
  it("prints nodes, partitions and shard replicas as tables", async () => {
    const fake = newFake();
    const res = await vecraft(fake, ["status"]);
    expect(res.code).toBe(0);
    expect(res.out).toBe(
      [
        "NODES (2)",
        "ID          ROLES                                         ADDRESS         ALIVE",
        "standalone  gateway,query_processor,storage,journal,meta  127.0.0.1:8080  yes",
        "storage-2   storage                                       127.0.0.1:7002  NO",
        "",
        "PARTITIONS (1)",
        "PARTITION  LEADER      EPOCH  COMMIT OFFSET  CLOSED AT                 REPLICAS",
        "        0  standalone      2          1,234  2025-01-01T00:00:00.000Z  standalone",
        "",
        "SHARD REPLICAS (2)",
        "COLLECTION  SHARD  PARTITION  NODE        APPLIED OFFSET  LAG  LAG MS  SERVING",
        "docs            0          0  standalone           1,234    0       0  yes",
        "docs            0          0  storage-2            1,200   34   1,500  NO",
        "",
      ].join("\n"),
    );
    const json = JSON.parse((await vecraft(fake, ["status", "--json"])).out) as { nodes: { roles: string[] }[]; partitions: { commitOffset: string }[] };
    expect(json.nodes[1]!.roles).toEqual(["storage"]);
    expect(json.partitions[0]!.commitOffset).toBe("1234");
  });

  it("sends the API key, and explains an unauthenticated or unreachable server", async () => {
    const fake = newFake();
    await vecraft(fake, ["status", "--api-key", "k-123"]);
    await vecraft(fake, ["status"], { env: { VECRAFT_API_KEY: "k-env" } });
    expect(fake.callsOf("GetClusterStatus").map((c) => c.headers.get("authorization"))).toEqual(["Bearer k-123", "Bearer k-env"]);

    fake.failNext("GetClusterStatus", () => new ConnectError("unknown API key", Code.Unauthenticated));
    const denied = await vecraft(fake, ["status"]);
    expect(denied).toEqual({ code: 1, out: "", err: "vecraft status: unknown API key (set --api-key or VECRAFT_API_KEY) [unauthenticated]\n" });

    // Nothing listens on port 9 of localhost (discard): the real transport is refused.
    const down = await vecraft(undefined, ["status", "--url", "http://127.0.0.1:9", "--retry-budget", "50ms"]);
    expect(down.code).toBe(1);
    expect(down.err).toBe("vecraft status: cannot connect to http://127.0.0.1:9: connection refused (is Vecraft running there? set --url or VECRAFT_URL)\n");
    expect((await vecraft(undefined, ["status", "--url", "not a url"])).code).toBe(2);
    expect((await vecraft(undefined, ["status", "--protocol", "soap"])).code).toBe(2);
  });
});

describe("help and dispatch", () => {
  it("prints the command list and global flags with --help, and exits 2 with no command", async () => {
    const help = await vecraft(undefined, ["--help"]);
    expect(help.code).toBe(0);
    for (const c of DEFAULT_COMMANDS) expect(help.out).toContain(`  ${c.path.join(" ")}`);
    expect(help.out).toContain("--url URL");
    expect(help.out).toContain("Exit codes: 0 success, 1 failure");
    expect((await vecraft(undefined, ["help"])).out).toBe(help.out);
    const none = await vecraft(undefined, []);
    expect(none.code).toBe(2);
    expect(none.err).toBe(`${help.out}`);
  });

  it("prints a command's help, a group's commands, and rejects unknown commands", async () => {
    for (const c of DEFAULT_COMMANDS) {
      const res = await vecraft(undefined, [...c.path, "--help"]);
      expect(res.code, c.path.join(" ")).toBe(0);
      expect(res.out.startsWith(`Usage: vecraft ${c.path.join(" ")}`)).toBe(true);
    }
    expect((await vecraft(undefined, ["help", "import"])).out).toContain("Formats (by extension unless --format is given)");
    const group = await vecraft(undefined, ["collections"]);
    expect(group.code).toBe(2);
    expect(group.err).toContain("collections create");
    expect((await vecraft(undefined, ["collections", "--help"])).code).toBe(0);
    const unknown = await vecraft(undefined, ["frobnicate"]);
    expect(unknown).toEqual({ code: 2, out: "", err: "vecraft: unknown command \"frobnicate\"\nRun 'vecraft --help' for the list of commands.\n" });
  });

  it("accepts global flags before the command, and commands registered later", async () => {
    const fake = newFake();
    const before = await vecraft(fake, ["--json", "--api-key", "k", "collections", "list"]);
    expect(before).toEqual({ code: 0, out: "[]\n", err: "" });
    const later: CommandSpec = {
      path: ["later"],
      summary: "A command registered after the defaults",
      options: { port: { type: "string", value: "N", help: "port" } },
      run: (ctx, args) => {
        ctx.io.out(`would serve on ${String(args.values["port"])}`);
        return Promise.resolve(0);
      },
    };
    const res = await vecraft(fake, ["later", "--port", "8081"], { commands: [...DEFAULT_COMMANDS, later] });
    expect(res).toEqual({ code: 0, out: "would serve on 8081\n", err: "" });
  });

  it("exits 130 when interrupted", async () => {
    const fake = await seeded();
    fake.upsertDelayMs = 1_000;
    const file = dir.file("slow.jsonl");
    await writeFile(file, JSON.stringify({ id: "x", vector: [1, 2, 3] }));
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("SIGINT")), 30);
    const res = await vecraft(fake, ["import", "docs", file], { signal: ac.signal });
    expect(res.code).toBe(130);
    expect(res.err).toBe("vecraft import: interrupted\n");
  });
});
