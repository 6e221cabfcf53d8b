// The JournalService over a real HTTP/2 server and a real data directory.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { decode } from "@vecraft/hlc";
import { fromBinary } from "@bufbuild/protobuf";
import { DataPayloadSchema, EntryType, JournalService, MetaService, NodeRole, RecordOp, type RegisteredNode } from "@vecraft/rpc";
import { dataEntry, startJournal, tempDir, testConfig, type JournalClient } from "./helpers.js";
import type { RunningJournal } from "../src/index.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(overrides: Parameters<typeof testConfig>[1] = {}): Promise<{ running: RunningJournal; client: JournalClient; dir: string }> {
  const dir = await tempDir("svc");
  const { running, client } = await startJournal(testConfig(dir.path, overrides));
  cleanups.push(dir.cleanup);
  cleanups.push(() => running.stop());
  return { running, client, dir: dir.path };
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

describe("Append", () => {
  it("assigns dense offsets and strictly increasing timestamps, after an EPOCH_START", async () => {
    const { client } = await setup({ tickIntervalMs: "0" });
    const res = await client.append({ partition: 0, entries: [dataEntry("c", ["a"]), dataEntry("c", ["b"]), dataEntry("c", ["c"])] });
    expect(res.results.map((r) => Number(r.offset))).toEqual([2, 3, 4]);
    const ts = res.results.map((r) => r.ts);
    expect(ts[0]! < ts[1]! && ts[1]! < ts[2]!).toBe(true);
    expect(res.epoch).toBe(1);
    const read = await client.readEntries({ refs: [{ partition: 0, offset: 1n }] });
    expect(read.entries[0]!.type).toBe(EntryType.EPOCH_START);
  });

  it("answers a retry with the same producer seqs with the original offsets and ts", async () => {
    const { client } = await setup({ tickIntervalMs: "0" });
    const req = { partition: 1, producerId: 99n, producerEpoch: 1, firstSeq: 10n, entries: [dataEntry("c", ["a"]), dataEntry("c", ["b"])] };
    const first = await client.append(req);
    const again = await client.append(req);
    expect(again.deduplicated).toBe(true);
    expect(again.results).toEqual(first.results);
    // A sub-range of the batch is also recognised.
    const part = await client.append({ ...req, firstSeq: 11n, entries: [dataEntry("c", ["b"])] });
    expect(part.results[0]).toEqual(first.results[1]);
    // Overlapping without matching is a client bug.
    const overlap = await codeOf(client.append({ ...req, firstSeq: 11n, entries: [dataEntry("c", ["b"]), dataEntry("c", ["x"])] }));
    expect(overlap.code).toBe(Code.InvalidArgument);
    // An older producer epoch is fenced once a newer one wrote.
    await client.append({ ...req, producerEpoch: 2, firstSeq: 1n });
    const fenced = await codeOf(client.append(req));
    expect(fenced.code).toBe(Code.Aborted);
    const status = await client.getPartitions({});
    expect(Number(status.partitions[1]!.commitOffset)).toBe(5); // EPOCH_START, a, b, and the epoch-2 batch of two
  });

  it("deduplicates across a restart (the producer table is rebuilt from the log)", async () => {
    const dir = await tempDir("dedup-restart");
    cleanups.push(dir.cleanup);
    const config = testConfig(dir.path, { tickIntervalMs: "0" });
    const a = await startJournal(config);
    const req = { partition: 0, producerId: 5n, producerEpoch: 0, firstSeq: 1n, entries: [dataEntry("c", ["a"]), dataEntry("c", ["b"])] };
    const first = await a.client.append(req);
    await a.running.stop();
    const b = await startJournal(config);
    cleanups.push(() => b.running.stop());
    const again = await b.client.append(req);
    expect(again.deduplicated).toBe(true);
    expect(again.results).toEqual(first.results);
    // The restart began a new epoch, after the old entries.
    const st = await b.client.getPartitions({});
    expect(st.partitions[0]!.epoch).toBe(2);
  });

  it("gives entries a ts above the client's causal token, and rejects tokens from the far future", async () => {
    const { client } = await setup({ tickIntervalMs: "0" });
    const token = (BigInt(Date.now() + 300) << 16n) + 5n;
    const res = await client.append({ partition: 0, causalTs: token, entries: [dataEntry("c", ["a"])] });
    expect(res.results[0]!.ts > token).toBe(true);
    const far = (BigInt(Date.now() + 60_000) << 16n) + 0n;
    const err = await codeOf(client.append({ partition: 0, causalTs: far, entries: [dataEntry("c", ["b"])] }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.message).toMatch(/causal_ts is \d+ ms ahead/);
  });

  it("rejects bad requests with a message that names the problem, writing nothing", async () => {
    const { client } = await setup({ tickIntervalMs: "0" });
    const before = await client.getPartitions({});
    const cases: [Promise<unknown>, Code, RegExp][] = [
      [client.append({ partition: 0, entries: [] }), Code.InvalidArgument, /at least one entry/],
      [client.append({ partition: 7, entries: [dataEntry("c", ["a"])] }), Code.NotFound, /partition 7 does not exist/],
      [client.append({ partition: 0, entries: [dataEntry("c", ["a"]), { payload: { case: undefined } }] }), Code.InvalidArgument, /entries\[1\]\.payload/],
      [client.append({ partition: 0, entries: [dataEntry("", ["a"])] }), Code.InvalidArgument, /entries\[0\]\.data\.collection/],
      [client.append({ partition: 0, entries: [dataEntry("c", [])] }), Code.InvalidArgument, /at least one upsert or delete/],
    ];
    for (const [p, code, msg] of cases) {
      const err = await codeOf(p);
      expect(err.code).toBe(code);
      expect(err.message).toMatch(msg);
    }
    const after = await client.getPartitions({});
    expect(after.partitions.map((p) => p.commitOffset)).toEqual(before.partitions.map((p) => p.commitOffset));
  });

  it("serves JSON over HTTP/1.1 on the same port", async () => {
    const { running } = await setup();
    const http1 = createClient(JournalService, createConnectTransport({ baseUrl: running.url, httpVersion: "1.1" }));
    const st = await http1.getPartitions({});
    expect(st.partitions).toHaveLength(2);
    const res = await fetch(`${running.url}/vecraft.v1.JournalService/GetPartitions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { partitions: { commitOffset: string }[] };
    expect(typeof body.partitions[0]!.commitOffset).toBe("string");
    expect((await fetch(`${running.url}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${running.url}/metrics`)).text();
    expect(metrics).toMatch(/vecraft_journal_fsync_duration_seconds_bucket/);
    expect(metrics).toMatch(/vecraft_journal_commit_offset\{partition="0"/);
    expect(metrics).toMatch(/nodejs_eventloop_lag/);
  });
});

describe("ticks and barriers", () => {
  it("an idle partition appends ticks, so its closed ts keeps up with the clock", async () => {
    const { client } = await setup({ tickIntervalMs: "20" });
    const a = await client.getPartitions({});
    await new Promise((r) => setTimeout(r, 200));
    const b = await client.getPartitions({});
    expect(Number(b.partitions[0]!.commitOffset)).toBeGreaterThan(Number(a.partitions[0]!.commitOffset) + 2);
    expect(decode(b.partitions[0]!.closedTs).wallMs).toBeGreaterThan(Date.now() - 1000);
  });

  it("a barrier returns a committed position after every acknowledged write", async () => {
    const { client } = await setup({ tickIntervalMs: "0" });
    const w = await client.append({ partition: 1, entries: [dataEntry("c", ["a"])] });
    const [b1, b2] = await Promise.all([client.barrier({ partitions: [1] }), client.barrier({ partitions: [1] })]);
    for (const b of [b1, b2]) {
      expect(b.positions[0]!.offset).toBeGreaterThan(w.results[0]!.offset);
      expect(b.positions[0]!.ts).toBeGreaterThan(w.results[0]!.ts);
    }
    const st = await client.getPartitions({});
    expect(st.partitions[1]!.commitOffset).toBeGreaterThanOrEqual(b1.positions[0]!.offset);
    const all = await client.barrier({});
    expect(all.positions.map((p) => p.partition)).toEqual([0, 1]);
  });
});

describe("Subscribe", () => {
  it("delivers exactly the committed sequence from random offsets while appends run", async () => {
    const { client } = await setup({ tickIntervalMs: "5" });
    const total = 300;
    const appends = (async () => {
      for (let i = 0; i < total; i += 10) {
        await client.append({ partition: 0, entries: Array.from({ length: 10 }, (_, k) => dataEntry("c", [`r${i + k}`])) });
      }
    })();
    const froms = [1, 2, 17, 50, 133];
    const readers = froms.map(async (from) => {
      // Subscribe as soon as the offset exists, i.e. while the appends are still running.
      while (Number((await client.getPartitions({})).partitions[0]!.commitOffset) < from - 1) await new Promise((r) => setTimeout(r, 2));
      const ac = new AbortController();
      const seen: { offset: number; ts: bigint }[] = [];
      let dataSeen = 0;
      try {
        for await (const msg of client.subscribe({ partition: 0, fromOffset: BigInt(from) }, { signal: ac.signal })) {
          for (const e of msg.entries) {
            seen.push({ offset: Number(e.offset), ts: e.ts });
            if (e.type === EntryType.DATA) dataSeen++;
          }
          if (dataSeen >= total - from) break;
        }
      } finally {
        ac.abort();
      }
      return { from, seen };
    });
    await appends;
    for (const { from, seen } of await Promise.all(readers)) {
      expect(seen[0]!.offset).toBe(from);
      for (let i = 1; i < seen.length; i++) {
        expect(seen[i]!.offset).toBe(seen[i - 1]!.offset + 1);
        expect(seen[i]!.ts > seen[i - 1]!.ts).toBe(true);
      }
    }
  });

  it("sends payloads as stored when asked for raw payloads", async () => {
    const { client } = await setup({ tickIntervalMs: "0" });
    await client.append({ partition: 0, entries: [dataEntry("c", ["a"], { requestId: "raw-1" })] });
    for await (const msg of client.subscribe({ partition: 0, fromOffset: 2n, rawPayloads: true })) {
      const e = msg.entries[0]!;
      expect(e.payload.case).toBeUndefined();
      const d = fromBinary(DataPayloadSchema, e.payloadBytes);
      expect(d.requestId).toBe("raw-1");
      expect(d.upserts[0]!.id).toBe("a");
      break;
    }
  });

  it("leaves ticks out when asked, and rejects offsets past the end", async () => {
    const { client } = await setup({ tickIntervalMs: "5" });
    await new Promise((r) => setTimeout(r, 50));
    await client.append({ partition: 0, entries: [dataEntry("c", ["a"])] });
    for await (const msg of client.subscribe({ partition: 0, fromOffset: 1n, skipTicks: true })) {
      expect(msg.entries.every((e) => e.type !== EntryType.TICK)).toBe(true);
      if (msg.entries.some((e) => e.type === EntryType.DATA)) break;
    }
    const st = await client.getPartitions({});
    const past = st.partitions[0]!.commitOffset + 1000n;
    const err = await codeOf(
      (async () => {
        for await (const _ of client.subscribe({ partition: 0, fromOffset: past })) break;
      })(),
    );
    expect(err.code).toBe(Code.OutOfRange);
    expect(err.message).toMatch(/past the end of the log/);
  });
});

describe("audit index", () => {
  it("answers record history, request lineage and operation listings", async () => {
    const { client } = await setup({ tickIntervalMs: "0" });
    await client.append({ partition: 0, entries: [dataEntry("books", ["x", "y"], { requestId: "req-1", principal: "alice" })] });
    await client.append({ partition: 1, entries: [dataEntry("books", ["x"], { requestId: "req-2", principal: "bob" })] });
    await client.append({ partition: 0, entries: [dataEntry("books", [], { requestId: "req-3", principal: "alice", deletes: ["x"] })] });
    await client.append({ partition: 1, entries: [dataEntry("films", ["x"], { requestId: "req-4", principal: "alice" })] });

    const hist = await client.getRecordHistory({ collection: "books", id: "x" });
    expect(hist.versions.map((v) => [v.requestId, v.op])).toEqual([
      ["req-1", RecordOp.UPSERT],
      ["req-2", RecordOp.UPSERT],
      ["req-3", RecordOp.DELETE],
    ]);
    expect(new Float32Array(Uint8Array.from(hist.versions[0]!.vectorF32).buffer)).toEqual(Float32Array.from([0.5, 1.5, 2.5, 3.5]));
    expect(JSON.parse(hist.versions[1]!.metadataJson)).toEqual({ id: "x", i: 0 });
    for (let i = 1; i < hist.versions.length; i++) expect(hist.versions[i]!.ts > hist.versions[i - 1]!.ts).toBe(true);

    const lineage = await client.getRequestEntries({ requestId: "req-1" });
    expect(lineage.entries).toHaveLength(1);
    expect(lineage.entries[0]!.payload.case).toBe("data");

    const alice = await client.listEntries({ principal: "alice" });
    expect(alice.operations.map((o) => o.requestId)).toEqual(["req-1", "req-3", "req-4"]);
    // Paging walks the same global order.
    const pages: string[] = [];
    let token = "";
    do {
      const page = await client.listEntries({ limit: 1, pageToken: token });
      pages.push(...page.operations.map((o) => o.requestId));
      token = page.nextPageToken;
    } while (token);
    expect(pages).toEqual(["req-1", "req-2", "req-3", "req-4"]);
    const bad = await codeOf(client.listEntries({ pageToken: "garbage" }));
    expect(bad.code).toBe(Code.InvalidArgument);
  });

  it("is rebuilt from the log when its file is lost", async () => {
    const dir = await tempDir("audit-rebuild");
    cleanups.push(dir.cleanup);
    const config = testConfig(dir.path, { tickIntervalMs: "0" });
    const a = await startJournal(config);
    await a.client.append({ partition: 0, entries: [dataEntry("books", ["x"], { requestId: "r1" })] });
    await a.client.append({ partition: 0, entries: [dataEntry("books", ["x"], { requestId: "r2" })] });
    await a.running.stop();
    await writeFile(join(dir.path, "journal", "audit.sqlite"), "this is not a database");
    const b = await startJournal(config);
    cleanups.push(() => b.running.stop());
    const hist = await b.client.getRecordHistory({ collection: "books", id: "x" });
    expect(hist.versions.map((v) => v.requestId)).toEqual(["r1", "r2"]);
  });
});

describe("corruption and write failures", () => {
  it("a partition with a corrupt record in the middle refuses to serve; the others serve", async () => {
    const dir = await tempDir("corrupt");
    cleanups.push(dir.cleanup);
    const config = testConfig(dir.path, { tickIntervalMs: "0" });
    const a = await startJournal(config);
    for (let i = 0; i < 5; i++) await a.client.append({ partition: 0, entries: [dataEntry("c", [`r${i}`])] });
    await a.running.stop();
    const pdir = join(dir.path, "journal", "partition-0000");
    const [seg] = (await readdir(pdir)).filter((f) => f.endsWith(".seg"));
    const bytes = await readFile(join(pdir, seg!));
    bytes[64 + 200] = bytes[64 + 200]! ^ 0x01; // inside an early record; valid ones follow
    await writeFile(join(pdir, seg!), bytes);
    const b = await startJournal(config);
    cleanups.push(() => b.running.stop());
    const err = await codeOf(b.client.append({ partition: 0, entries: [dataEntry("c", ["z"])] }));
    expect(err.code).toBe(Code.DataLoss);
    expect(err.message).toMatch(/corrupt journal record/);
    await b.client.append({ partition: 1, entries: [dataEntry("c", ["z"])] });
    const st = await b.client.getPartitions({});
    expect(st.partitions[0]!.serving).toBe(false);
    expect((await fetch(`${b.running.url}/readyz`)).status).toBe(503);
    // The corrupt segment was not touched.
    expect((await readFile(join(pdir, seg!))).equals(bytes)).toBe(true);
  });

  it("an fsync error stops the log: the batch is never acknowledged and nothing is retried", async () => {
    const dir = await tempDir("fsync");
    cleanups.push(dir.cleanup);
    const { nodeFileSystem } = await import("../src/log/file-system.js");
    let failNext = false;
    let fsyncCalls = 0;
    const faulty = {
      ...nodeFileSystem,
      async open(path: string) {
        const f = await nodeFileSystem.open(path);
        return wrap(f);
      },
      async create(path: string) {
        return wrap(await nodeFileSystem.create(path));
      },
    };
    function wrap<T extends { datasync(): Promise<void> }>(f: T): T {
      return new Proxy(f, {
        get(target, prop, receiver) {
          if (prop === "datasync") {
            return async () => {
              fsyncCalls++;
              if (failNext) throw Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" });
              return target.datasync();
            };
          }
          const v: unknown = Reflect.get(target, prop, receiver);
          return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    }
    const fatal: Error[] = [];
    const { client, running } = await startJournal(testConfig(dir.path, { tickIntervalMs: "0" }), { fs: faulty, onFatal: (e) => fatal.push(e) });
    cleanups.push(() => running.stop().catch(() => undefined));
    await client.append({ partition: 0, entries: [dataEntry("c", ["ok"])] });
    failNext = true;
    const calls = fsyncCalls;
    const err = await codeOf(client.append({ partition: 0, entries: [dataEntry("c", ["lost"])] }));
    expect(err.code).toBe(Code.Internal);
    expect(fatal).toHaveLength(1);
    expect(fsyncCalls).toBe(calls + 1); // exactly one attempt, never retried
    const again = await codeOf(client.append({ partition: 0, entries: [dataEntry("c", ["after"])] }));
    expect(again.code).toBe(Code.Unavailable);
  });
});

describe("registration", () => {
  it("registers as JOURNAL with its listen URL when a meta-manager is configured, and not otherwise", async () => {
    const registrations: RegisteredNode[] = [];
    const meta = createClient(
      MetaService,
      createRouterTransport(({ service }) => {
        service(MetaService, {
          registerNode(req) {
            if (req.node) registrations.push(req.node);
            return { leaseId: "1", ttlMs: req.ttlMs };
          },
          heartbeat: () => ({ alive: true }),
        });
      }),
    );
    const dir = await tempDir("reg");
    cleanups.push(dir.cleanup);
    const { running } = await startJournal(testConfig(dir.path, { nodeId: "journal-7" }), { meta });
    cleanups.push(() => running.stop());
    await expect.poll(() => registrations.length).toBeGreaterThan(0);
    expect(registrations[0]).toMatchObject({ id: "journal-7", address: running.url, roles: [NodeRole.JOURNAL] });
    const plain = await setup();
    expect(plain.running.registration).toBeUndefined();
  });
});
