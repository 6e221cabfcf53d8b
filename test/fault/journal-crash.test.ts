// Crash safety of the journal with a real process: a load of concurrent idempotent
// appends, SIGKILL at a random moment, restart on the same data directory, retry of every
// request whose answer was lost. Several kill points in a row on one directory. At the
// end the log must hold every acknowledged entry at its offset with its ts, nothing
// twice, ts strictly increasing with offset, and each retry answered with the offsets
// where its entries really are.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { AppendRequestSchema, DataPayloadSchema, EntryType, type AppendRequest, type AppendResult, type JournalEntry } from "@vecraft/rpc";
import { startJournalProcess, type JournalProcess } from "./journal-process.js";

const PARTITIONS = 4;
const PRODUCERS = 16;
const CYCLES = 8;
const DIM = 64;

interface Producer {
  readonly id: bigint;
  readonly partition: number;
  nextSeq: number;
}

interface Outcome {
  readonly req: AppendRequest;
  readonly results: AppendResult[];
  readonly retried: boolean;
}

function makeRequest(p: Producer, n: number): AppendRequest {
  const firstSeq = p.nextSeq;
  p.nextSeq += n;
  return create(AppendRequestSchema, {
    partition: p.partition,
    producerId: p.id,
    producerEpoch: 0,
    firstSeq: BigInt(firstSeq),
    entries: Array.from({ length: n }, (_, k) => ({
      payload: {
        case: "data" as const,
        value: create(DataPayloadSchema, {
          collection: "crash",
          upserts: [
            {
              id: `p${p.id}-s${firstSeq + k}`,
              vectorF32: new Uint8Array(new Float32Array(DIM).fill(firstSeq + k).buffer),
              metadataJson: "{}",
            },
          ],
          requestId: `p${p.id}-b${firstSeq}`,
        }),
      },
    })),
  });
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "vecraft-crash-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function readAll(j: JournalProcess, partition: number, upTo: number): Promise<JournalEntry[]> {
  const out: JournalEntry[] = [];
  const ac = new AbortController();
  try {
    for await (const msg of j.client.subscribe({ partition, fromOffset: 1n }, { signal: ac.signal })) {
      out.push(...msg.entries);
      if (out.length >= upTo) break;
    }
  } finally {
    ac.abort();
  }
  return out.slice(0, upTo);
}

describe("journal crash safety (kill -9)", () => {
  it(`keeps every acknowledged entry across ${CYCLES} random kill points`, async () => {
    const dataDir = join(root, "data");
    const args = ["--partitions", String(PARTITIONS), "--segment-bytes", "64KiB", "--tick-interval-ms", "20"];
    const producers: Producer[] = Array.from({ length: PRODUCERS }, (_, i) => ({ id: BigInt(1000 + i), partition: i % PARTITIONS, nextSeq: 1 }));
    const outcomes: Outcome[] = [];
    const killPoints: number[] = [];
    let acked = 0;
    let dedupedRetries = 0;
    let j = await startJournalProcess(dataDir, args);
    let current = Promise.resolve(j);
    // A subscriber on partition 0 for the whole run: it resumes after every crash from the
    // next offset it needs, and must end up with exactly the committed sequence.
    const received: JournalEntry[] = [];
    let subscribing = true;
    const subscriber = (async () => {
      while (subscribing) {
        const proc = await current;
        const ac = new AbortController();
        try {
          for await (const msg of proc.client.subscribe({ partition: 0, fromOffset: BigInt(received.length + 1) }, { signal: ac.signal })) {
            received.push(...msg.entries);
            if (!subscribing) break;
          }
        } catch {
          // The process was killed under the stream; resume from the next offset.
          await new Promise((r) => setTimeout(r, 20));
        } finally {
          ac.abort();
        }
      }
    })();
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const lost: AppendRequest[] = [];
      let stop = false;
      const loops = producers.map(async (p) => {
        while (!stop) {
          const req = makeRequest(p, 1 + Math.floor(Math.random() * 4));
          try {
            const res = await j.client.append(req, { timeoutMs: 10_000 });
            outcomes.push({ req, results: res.results, retried: false });
            acked += req.entries.length;
          } catch {
            // The process died under this request: whether it was written is unknown.
            lost.push(req);
            return;
          }
        }
      });
      const killAfter = 100 + Math.floor(Math.random() * 600);
      killPoints.push(killAfter);
      await new Promise((r) => setTimeout(r, killAfter));
      let restarted!: (p: JournalProcess) => void;
      current = new Promise((r) => (restarted = r));
      await j.kill9();
      stop = true;
      await Promise.all(loops);
      j = await startJournalProcess(dataDir, args);
      restarted(j);
      // Retry every request whose answer was lost, exactly as sent.
      for (const req of lost) {
        const res = await j.client.append(req);
        if (res.deduplicated) dedupedRetries++;
        outcomes.push({ req, results: res.results, retried: true });
      }
    }
    const context = `kill points (ms after load start): ${killPoints.join(", ")}; ${acked} entries acknowledged before kills; ${dedupedRetries} retries answered from the producer table`;
    console.log(context);
    expect(acked, context).toBeGreaterThan(0);

    const status = await j.client.getPartitions({});
    const logs = new Map<number, JournalEntry[]>();
    for (const ps of status.partitions) logs.set(ps.partition, await readAll(j, ps.partition, Number(ps.commitOffset)));

    for (const [partition, log] of logs) {
      const seen = new Map<string, number>();
      let epoch = 0;
      for (let i = 0; i < log.length; i++) {
        const e = log[i]!;
        expect(Number(e.offset), `${context}; partition ${partition}`).toBe(i + 1);
        if (i > 0) expect(e.ts > log[i - 1]!.ts, `${context}; ts must increase at offset ${e.offset}`).toBe(true);
        expect(e.epoch).toBeGreaterThanOrEqual(epoch);
        if (e.epoch > epoch) expect(e.type, `first entry of epoch ${e.epoch}`).toBe(EntryType.EPOCH_START);
        epoch = e.epoch;
        if (e.type === EntryType.DATA) {
          const key = `${e.producerId}:${e.seq}`;
          expect(seen.has(key), `${context}; duplicate producer/seq ${key} at ${seen.get(key)} and ${e.offset}`).toBe(false);
          seen.set(key, Number(e.offset));
        }
      }
      expect(epoch, "one epoch per start").toBe(CYCLES + 1);
    }

    // Every acknowledged (and every retried) entry is where its answer said, with its ts.
    let checked = 0;
    for (const o of outcomes) {
      const log = logs.get(o.req.partition)!;
      o.results.forEach((r, k) => {
        const e = log[Number(r.offset) - 1];
        const what = `${context}; ${o.retried ? "retried" : "acked"} producer ${o.req.producerId} seq ${Number(o.req.firstSeq) + k}`;
        expect(e, what).toBeDefined();
        expect(e!.ts, what).toBe(r.ts);
        expect(e!.producerId, what).toBe(o.req.producerId);
        expect(Number(e!.seq), what).toBe(Number(o.req.firstSeq) + k);
        const payload = e!.payload.case === "data" ? e!.payload.value : undefined;
        expect(payload?.upserts[0]?.id, what).toBe(`p${o.req.producerId}-s${Number(o.req.firstSeq) + k}`);
        checked++;
      });
    }
    // Nothing was lost: every seq each producer issued is in the log exactly once, in order.
    for (const p of producers) {
      const offsets = logs
        .get(p.partition)!
        .filter((e) => e.type === EntryType.DATA && e.producerId === p.id)
        .map((e) => Number(e.seq));
      expect(offsets, `${context}; producer ${p.id}`).toEqual(Array.from({ length: p.nextSeq - 1 }, (_, i) => i + 1));
    }
    expect(checked).toBeGreaterThan(0);

    // The resuming subscriber saw exactly the committed sequence: no gap, no repeat, and
    // every entry it was sent is still in the log after all the crashes.
    const log0 = logs.get(0)!;
    while (received.length < log0.length) await new Promise((r) => setTimeout(r, 10));
    subscribing = false;
    await j.client.append(makeRequest(producers[0]!, 1)); // wakes the stream so it can end
    await subscriber;
    expect(received.slice(0, log0.length).map((e) => [Number(e.offset), e.ts])).toEqual(log0.map((e) => [Number(e.offset), e.ts]));
    await j.stop();
  });
});
