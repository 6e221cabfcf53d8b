// WatchChanges over a real server: the changes of a collection from two journal
// partitions, merged in global (ts, partition, offset) order, released only when every
// partition's closed ts has passed them.
import { afterEach, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { shardOf } from "@vecraft/model";
import { Metric, Op, type RecordChange, type WatchChangesResponse } from "@vecraft/rpc";
import { FakeCluster } from "./fakes.js";
import { eventually, startGateway, stopAll, vec, type Harness } from "./helpers.js";

afterEach(stopAll);

/** Ids that land on shard 0 (partition 0) and shard 1 (partition 1) of a 2-shard collection. */
function idsOnShard(shard: number, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (shardOf(`id${i}`, 2) === shard) out.push(`id${i}`);
  return out;
}

interface Watcher {
  readonly messages: WatchChangesResponse[];
  readonly changes: RecordChange[];
  readonly done: Promise<ConnectError | undefined>;
  stop(): void;
}

function watch(h: Harness, req: { collection: string; fromTs?: bigint; includeVectors?: boolean; includeMetadata?: boolean }): Watcher {
  const ac = new AbortController();
  const messages: WatchChangesResponse[] = [];
  const changes: RecordChange[] = [];
  const done = (async (): Promise<ConnectError | undefined> => {
    try {
      for await (const m of h.client.watchChanges(req, { signal: ac.signal })) {
        messages.push(m);
        changes.push(...m.changes);
      }
      return undefined;
    } catch (e) {
      return ConnectError.from(e);
    }
  })();
  return { messages, changes, done, stop: () => ac.abort() };
}

function expectGlobalOrder(changes: readonly RecordChange[]): void {
  for (let i = 1; i < changes.length; i++) {
    const a = changes[i - 1]!;
    const b = changes[i]!;
    const ordered = a.ts < b.ts || (a.ts === b.ts && (a.partition < b.partition || (a.partition === b.partition && a.offset <= b.offset)));
    expect(ordered, `change ${i} out of order`).toBe(true);
  }
}

async function setup(config: Record<string, string> = {}): Promise<{ h: Harness; fake: FakeCluster; p0: string[]; p1: string[] }> {
  const fake = new FakeCluster({ partitions: 2, heartbeatMs: 10 });
  const h = await startGateway({ fake, config: { watchHeartbeatMs: "20ms", ...config } });
  await h.client.createCollection({ name: "docs", dimension: 2, metric: Metric.L2, shards: 2 });
  return { h, fake, p0: idsOnShard(0, 50), p1: idsOnShard(1, 50) };
}

describe("WatchChanges", () => {
  it("merges two partitions in global order, then follows live changes as ticks close the partitions", async () => {
    const { h, fake, p0, p1 } = await setup();
    // History, interleaved across the partitions (the fake stamps ts in append order).
    const put = (partition: number, id: string, requestId = "hist"): bigint =>
      fake.appendData(partition, {
        collection: "docs",
        shard: partition,
        upserts: [{ id, vectorF32: new Uint8Array(new Float32Array(vec(2, id.length)).buffer), metadataJson: `{"id":"${id}"}` }],
        requestId,
        principal: "someone",
      }).ts;
    const history = [put(0, p0[0]!), put(1, p1[0]!), put(1, p1[1]!), put(0, p0[1]!)];
    fake.appendData(0, { collection: "other", shard: 0, upserts: [{ id: "x", vectorF32: new Uint8Array(8) }] });
    fake.appendData(1, { collection: "docs", shard: 1, deleteIds: [p1[0]!], requestId: "del" });
    fake.tick();

    const w = watch(h, { collection: "docs", includeMetadata: true, includeVectors: true });
    await eventually(() => w.changes.length >= 5);
    expect(w.changes.map((c) => [c.id, c.op])).toEqual([
      [p0[0], Op.UPSERT],
      [p1[0], Op.UPSERT],
      [p1[1], Op.UPSERT],
      [p0[1], Op.UPSERT],
      [p1[0], Op.DELETE],
    ]);
    expect(w.changes.slice(0, 4).map((c) => c.ts)).toEqual(history);
    expect(w.changes[0]).toMatchObject({ partition: 0, requestId: "hist", principal: "someone", metadata: { id: p0[0] } });
    expect(w.changes[0]!.vector).toEqual(vec(2, p0[0]!.length));

    // Live: a change on partition 1 waits until partition 0 has closed past it.
    const live = put(1, p1[2]!, "live");
    await new Promise((r) => setTimeout(r, 100));
    expect(w.changes.map((c) => c.id)).not.toContain(p1[2]);
    // Heartbeats meanwhile never claim a resolved ts at or past the held-back change.
    expect(w.messages.every((m) => m.resolvedTs < live)).toBe(true);
    fake.tick(0);
    await eventually(() => w.changes.some((c) => c.id === p1[2]));

    // Live changes through the gateway itself, on both partitions at once.
    const res = await h.client.upsert({
      collection: "docs",
      records: [...p0.slice(2, 5), ...p1.slice(3, 6)].map((id) => ({ id, vector: [1, 2] })),
      requestId: "batch",
    });
    fake.tick();
    await eventually(() => w.changes.filter((c) => c.requestId === "batch").length === 6);
    expectGlobalOrder(w.changes);
    // Every message's changes are at or below its resolved ts, and resolved ts never goes back.
    let resolved = 0n;
    for (const m of w.messages) {
      expect(m.resolvedTs >= resolved).toBe(true);
      resolved = m.resolvedTs;
      for (const c of m.changes) expect(c.ts <= m.resolvedTs).toBe(true);
    }
    expect(
      w.changes
        .filter((c) => c.requestId === "batch")
        .map((c) => c.ts)
        .sort(),
    ).toEqual(res.entries.flatMap((e) => Array.from({ length: 3 }, () => e.ts)).sort());

    // Idle: heartbeats (no changes) advance resolved_ts as the partitions tick.
    const seen = w.messages.length;
    for (let i = 0; i < 4; i++) {
      fake.tick();
      await new Promise((r) => setTimeout(r, 30));
    }
    await eventually(() => w.messages.slice(seen).some((m) => m.changes.length === 0 && m.resolvedTs > resolved));
    w.stop();
    expect((await w.done)?.code).toBe(Code.Canceled);
    // The stream's resources are released when the client goes away.
    await eventually(async () => /vecraft_gateway_watch_streams 0/.test(await (await fetch(`${h.url}/metrics`)).text()));
  });

  it("starts at from_ts, and resuming from resolved_ts + 1 repeats nothing", async () => {
    const { h, fake, p0, p1 } = await setup();
    const ts: bigint[] = [];
    for (let i = 0; i < 10; i++) {
      const partition = i % 2;
      ts.push(
        fake.appendData(partition, { collection: "docs", shard: partition, upserts: [{ id: (partition === 0 ? p0 : p1)[i]!, vectorF32: new Uint8Array(8) }] })
          .ts,
      );
    }
    fake.tick();
    const w = watch(h, { collection: "docs", fromTs: ts[4]! });
    await eventually(() => w.changes.length >= 6);
    expect(w.changes.map((c) => c.ts)).toEqual(ts.slice(4));
    const resumeFrom = w.messages.find((m) => m.changes.some((c) => c.ts === ts[6]))!.resolvedTs + 1n;
    w.stop();
    await w.done;
    const again = watch(h, { collection: "docs", fromTs: resumeFrom });
    await eventually(() => again.messages.length > 0 && again.messages.at(-1)!.resolvedTs >= ts[9]!);
    const before = w.changes.filter((c) => c.ts < resumeFrom).map((c) => c.ts);
    expect([...before, ...again.changes.map((c) => c.ts)]).toEqual(ts.slice(4));
    again.stop();
    await again.done;
  });

  it("keeps order with tiny buffers (pull-based, bounded) and many entries", async () => {
    const { h, fake, p0, p1 } = await setup({ watchBufferChanges: "2" });
    const expected: bigint[] = [];
    for (let i = 0; i < 40; i++) {
      // Runs of several entries on one partition, then the other: the merge must hold them back.
      const partition = Math.floor(i / 5) % 2;
      expected.push(
        fake.appendData(partition, { collection: "docs", shard: partition, upserts: [{ id: (partition === 0 ? p0 : p1)[i]!, vectorF32: new Uint8Array(8) }] })
          .ts,
      );
    }
    fake.tick();
    const w = watch(h, { collection: "docs" });
    await eventually(() => w.changes.length >= 40);
    expect(w.changes.map((c) => c.ts)).toEqual(expected);
    w.stop();
    await w.done;
  });

  it("ends with NOT_FOUND when the collection is dropped, after the changes before the drop", async () => {
    const { h, fake, p0 } = await setup();
    const w = watch(h, { collection: "docs" });
    fake.appendData(0, { collection: "docs", shard: 0, upserts: [{ id: p0[0]!, vectorF32: new Uint8Array(8) }] });
    fake.tick();
    await eventually(() => w.changes.length === 1);
    await h.client.dropCollection({ name: "docs" });
    fake.tick();
    const err = await w.done;
    expect(err?.code).toBe(Code.NotFound);
    expect(err?.rawMessage).toMatch(/collection "docs" was dropped/);
    const missing = watch(h, { collection: "nope" });
    expect((await missing.done)?.code).toBe(Code.NotFound);
  });
});
