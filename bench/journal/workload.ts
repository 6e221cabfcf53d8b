// The client side of the journal benchmark: idempotent producers appending 1 KiB DATA
// entries over gRPC (Connect's Node HTTP/2 transport), either closed-loop (each producer
// awaits its own appends) or open-loop at a paced rate.
import { monitorEventLoopDelay } from "node:perf_hooks";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { DataPayloadSchema, EntryInputSchema, JournalService, type EntryInput } from "@vecraft/rpc";
import { LatencyRecorder, type LatencySummary } from "./stats.js";

export type JournalClient = Client<typeof JournalService>;

/** Bytes of each entry's vector (256 float32 values). */
export const VECTOR_BYTES = 1024;
/** No Append waits longer than this, so a stuck server cannot hang the benchmark. */
const APPEND_TIMEOUT_MS = 30_000;
/** Upper bound on appends per producer per scenario, whatever the timing. */
const MAX_APPENDS_PER_PRODUCER = 5_000_000;
/** Latency samples kept per scenario. */
const MAX_SAMPLES = 2_000_000;
/** After the measurement window, in-flight appends get this long to finish. */
const DRAIN_TIMEOUT_MS = 60_000;
/** The longest warm-up of a closed-loop scenario, whatever the acks do. */
const MAX_WARMUP_MS = 30_000;
/** Errors whose messages are kept for the report. */
const KEEP_ERRORS = 5;

/**
 * One HTTP/2 connection per transport; producers share them round-robin. The transport
 * keeps Connect's defaults (what a gateway would use) unless `maxSessionMemoryMb` raises
 * node's per-session buffer limit (default 10 MiB, which large appends in flight exceed).
 */
export function createClients(url: string, connections: number, maxSessionMemoryMb?: number): JournalClient[] {
  return Array.from({ length: connections }, () =>
    createClient(
      JournalService,
      createGrpcTransport({ baseUrl: url, ...(maxSessionMemoryMb !== undefined ? { nodeOptions: { maxSessionMemory: maxSessionMemoryMb } } : {}) }),
    ),
  );
}

/**
 * A batch of DATA entries, each with one RecordWrite: a 1 KiB float32 vector and a small
 * metadata object. Built once per producer and resent with new sequence numbers (each
 * append is a new version of the same record ids, like a stream of updates).
 */
export function buildBatch(producer: number, size: number): EntryInput[] {
  const dim = VECTOR_BYTES / 4;
  const out: EntryInput[] = [];
  for (let i = 0; i < size; i++) {
    const v = new Float32Array(dim);
    for (let k = 0; k < dim; k++) v[k] = Math.sin(producer * 7919 + i * 131 + k) * 0.5;
    const id = `p${producer}-r${i}`;
    out.push(
      create(EntryInputSchema, {
        payload: {
          case: "data",
          value: create(DataPayloadSchema, {
            collection: "bench",
            shard: producer % 16,
            upserts: [{ id, vectorF32: new Uint8Array(v.buffer), metadataJson: JSON.stringify({ p: producer, i, tag: "bench" }) }],
            requestId: "",
            principal: "bench",
          }),
        },
      }),
    );
  }
  return out;
}

/** A random non-zero 64-bit producer id. */
export function newProducerId(): bigint {
  for (let i = 0; i < 16; i++) {
    const id = randomBytes(8).readBigUInt64BE(0);
    if (id !== 0n) return id;
  }
  throw new Error("could not draw a non-zero producer id");
}

interface Producer {
  readonly index: number;
  readonly id: bigint;
  readonly partition: number;
  readonly client: JournalClient;
  readonly entries: EntryInput[];
  nextSeq: bigint;
  causalTs: bigint;
  /** The last acknowledged batch, resent after the run to check deduplication. */
  lastAcked?: { firstSeq: bigint; firstOffset: bigint };
}

function makeProducers(clients: readonly JournalClient[], count: number, partitions: number, batch: number): Producer[] {
  return Array.from({ length: count }, (_, index) => ({
    index,
    id: newProducerId(),
    partition: index % partitions,
    client: clients[index % clients.length]!,
    entries: buildBatch(index, batch),
    nextSeq: 1n,
    causalTs: 0n,
  }));
}

export interface ErrorReport {
  count: number;
  samples: string[];
}

function noteError(errors: ErrorReport, e: unknown): void {
  errors.count++;
  if (errors.samples.length < KEEP_ERRORS) errors.samples.push(e instanceof ConnectError ? `${e.code}: ${e.rawMessage}` : String(e));
}

/** Sends one append for the producer's next seqs; updates its state on success. */
async function appendOnce(p: Producer): Promise<void> {
  const firstSeq = p.nextSeq;
  const res = await p.client.append(
    { partition: p.partition, producerId: p.id, producerEpoch: 1, firstSeq, causalTs: p.causalTs, entries: p.entries },
    { timeoutMs: APPEND_TIMEOUT_MS },
  );
  const first = res.results[0];
  const last = res.results[res.results.length - 1];
  if (!first || !last || res.results.length !== p.entries.length) throw new Error(`append returned ${res.results.length} results for ${p.entries.length} entries`);
  if (res.deduplicated) throw new Error(`a fresh batch (seq ${firstSeq}) was reported as a duplicate`);
  p.nextSeq = firstSeq + BigInt(p.entries.length);
  // The session token a gateway would pass on: the next append's ts must exceed it.
  p.causalTs = last.ts;
  p.lastAcked = { firstSeq, firstOffset: first.offset };
}

export interface DedupCheck {
  readonly checked: number;
  readonly ok: boolean;
  readonly detail: string;
}

/** Resends the last acknowledged batch of a few producers: each must come back deduplicated with its original offsets. */
async function checkDedup(producers: readonly Producer[], max: number): Promise<DedupCheck> {
  let checked = 0;
  for (const p of producers) {
    if (checked >= max) break;
    if (!p.lastAcked) continue;
    const res = await p.client.append(
      { partition: p.partition, producerId: p.id, producerEpoch: 1, firstSeq: p.lastAcked.firstSeq, causalTs: 0n, entries: p.entries },
      { timeoutMs: APPEND_TIMEOUT_MS },
    );
    checked++;
    if (!res.deduplicated || res.results[0]?.offset !== p.lastAcked.firstOffset) {
      return { checked, ok: false, detail: `producer ${p.index}: retry of seq ${p.lastAcked.firstSeq} got deduplicated=${res.deduplicated} offset ${res.results[0]?.offset} (expected ${p.lastAcked.firstOffset})` };
    }
  }
  return { checked, ok: checked > 0, detail: checked > 0 ? "retries answered from the producer table with the original offsets" : "no producer had an acknowledged batch" };
}

/** Hooks run at the edges of the measurement window (scrape /metrics, read CPU). */
export interface WindowHooks {
  atStart(): Promise<void>;
  atEnd(): Promise<void>;
}

export interface ClosedLoopResult {
  readonly windowSeconds: number;
  /** Seconds from the first append to the window's start (warm-up, at least until every producer had an ack). */
  readonly warmupSeconds: number;
  /** Appends and entries acknowledged inside the window. */
  readonly appends: number;
  readonly entries: number;
  readonly entriesPerSec: number;
  readonly appendsPerSec: number;
  /** Client-side latency of appends started inside the window (send to ack). */
  readonly latency: LatencySummary;
  readonly errors: ErrorReport;
  readonly clientCpuCores: number;
  /** Event-loop delay of the benchmark process beyond its 1 ms sampling timer, p99. */
  readonly clientLoopLagP99Ms: number;
  readonly dedup: DedupCheck;
}

/**
 * `producers` closed-loop producers, each awaiting its own appends of `batch` entries,
 * spread over the partitions round-robin. Warms up for at least `warmupSec`, then measures `seconds`.
 */
export async function runClosedLoop(opts: {
  clients: readonly JournalClient[];
  producers: number;
  batch: number;
  partitions: number;
  warmupSec: number;
  seconds: number;
  hooks: WindowHooks;
}): Promise<ClosedLoopResult> {
  const producers = makeProducers(opts.clients, opts.producers, opts.partitions, opts.batch);
  const rec = new LatencyRecorder(MAX_SAMPLES);
  const errors: ErrorReport = { count: 0, samples: [] };
  const t0 = performance.now();
  // The window opens after the warm-up and once every producer has had an append
  // acknowledged (with big batches the first acks can take seconds), but no later than
  // MAX_WARMUP_MS: then it is steady state, not the ramp-up, that gets measured.
  let windowStart = Number.POSITIVE_INFINITY;
  let windowEnd = Number.POSITIVE_INFINITY;
  let producersAcked = 0;
  let allAcked: () => void = () => undefined;
  const allAckedP = new Promise<void>((r) => (allAcked = r));
  let appends = 0;
  let entries = 0;

  const loop = async (p: Producer): Promise<void> => {
    let acked = false;
    for (let n = 0; n < MAX_APPENDS_PER_PRODUCER; n++) {
      const start = performance.now();
      if (start >= windowEnd) return;
      try {
        await appendOnce(p);
      } catch (e) {
        // A failed append is retried with the same seqs (that is what dedup is for).
        noteError(errors, e);
        await sleep(10);
        continue;
      }
      const end = performance.now();
      if (!acked) {
        acked = true;
        if (++producersAcked === producers.length) allAcked();
      }
      if (start >= windowStart) rec.add(end - start);
      if (end >= windowStart && end < windowEnd) {
        appends++;
        entries += p.entries.length;
      }
    }
  };

  const lag = monitorEventLoopDelay({ resolution: 1 });
  const window = (async () => {
    await sleep(opts.warmupSec * 1000);
    await Promise.race([allAckedP, sleep(Math.max(0, t0 + MAX_WARMUP_MS - performance.now()))]);
    windowStart = performance.now();
    windowEnd = windowStart + opts.seconds * 1000;
    lag.enable();
    const cpu0 = process.cpuUsage();
    await opts.hooks.atStart();
    await sleep(Math.max(0, windowEnd - performance.now()));
    const cpu = process.cpuUsage(cpu0);
    lag.disable();
    await opts.hooks.atEnd();
    return { clientCpuCores: (cpu.user + cpu.system) / 1e6 / opts.seconds, warmupSeconds: (windowStart - t0) / 1000 };
  })();
  const running = Promise.all(producers.map(loop));
  const { clientCpuCores, warmupSeconds } = await window;
  const drained = await Promise.race([running.then(() => true), sleep(DRAIN_TIMEOUT_MS, false)]);
  if (!drained) throw new Error(`in-flight appends did not finish within ${DRAIN_TIMEOUT_MS} ms of the window's end`);
  const dedup = await checkDedup(producers, 4);
  return {
    windowSeconds: opts.seconds,
    warmupSeconds,
    appends,
    entries,
    entriesPerSec: entries / opts.seconds,
    appendsPerSec: appends / opts.seconds,
    latency: rec.summary(),
    errors,
    clientCpuCores,
    clientLoopLagP99Ms: Math.max(0, lag.percentile(99) / 1e6 - 1),
    dedup,
  };
}

export interface PacedResult {
  readonly targetRate: number;
  readonly slots: number;
  readonly windowSeconds: number;
  /** Appends scheduled inside the window, and how many of them were acknowledged (eventually). */
  readonly scheduled: number;
  readonly acked: number;
  /** Acks that arrived inside the window, per second: below the target rate, the server fell behind. */
  readonly achievedRate: number;
  /** How long after the window's end the last scheduled append was acknowledged. */
  readonly drainMs: number;
  /** Client-side latency from sending the append to its ack. */
  readonly latency: LatencySummary;
  /** Latency from the append's scheduled time (includes timer slip and waiting for a free slot). */
  readonly latencyFromSchedule: LatencySummary;
  /** Appends of the window that found every slot busy and waited for one. */
  readonly waitedForSlot: number;
  readonly errors: ErrorReport;
  readonly clientCpuCores: number;
  readonly clientLoopLagP99Ms: number;
  readonly dedup: DedupCheck;
}

/**
 * Open-loop pacing: append k (one entry) is due at start + k / rate; a timer wakes about
 * every millisecond and sends whatever is due, each on a free slot (an idempotent producer
 * with no append in flight). Slow acks do not lower the offered rate unless every slot is
 * busy, which is counted.
 */
export async function runPaced(opts: {
  clients: readonly JournalClient[];
  rate: number;
  slots: number;
  partitions: number;
  warmupSec: number;
  seconds: number;
  hooks: WindowHooks;
}): Promise<PacedResult> {
  const producers = makeProducers(opts.clients, opts.slots, opts.partitions, 1);
  const free: Producer[] = [...producers];
  const backlog: number[] = [];
  const rec = new LatencyRecorder(MAX_SAMPLES);
  const recSched = new LatencyRecorder(MAX_SAMPLES);
  const errors: ErrorReport = { count: 0, samples: [] };
  const intervalMs = 1000 / opts.rate;
  const warmupCount = Math.round(opts.warmupSec * opts.rate);
  const total = warmupCount + Math.round(opts.seconds * opts.rate);
  const t0 = performance.now() + 5;
  let acked = 0;
  let ackedInWindow = 0;
  const windowStart = t0 + warmupCount * intervalMs;
  const windowEnd = t0 + total * intervalMs;
  let waitedForSlot = 0;
  let inFlight = 0;
  let idle: (() => void) | undefined;

  const send = (k: number, p: Producer): void => {
    inFlight++;
    const due = t0 + k * intervalMs;
    const start = performance.now();
    appendOnce(p).then(
      () => {
        const end = performance.now();
        if (k >= warmupCount) {
          rec.add(end - start);
          recSched.add(end - due);
          acked++;
        }
        if (end >= windowStart && end < windowEnd) ackedInWindow++;
      },
      (e: unknown) => noteError(errors, e),
    ).finally(() => {
      inFlight--;
      const next = backlog.shift();
      if (next !== undefined) send(next, p);
      else free.push(p);
      if (inFlight === 0 && idle) idle();
    });
  };

  // Sends every append due by now; sleeps until the next one is due.
  const pace = async (from: number, to: number): Promise<void> => {
    let k = from;
    while (k < to) {
      const now = performance.now();
      while (k < to && t0 + k * intervalMs <= now) {
        const p = free.pop();
        if (p) send(k, p);
        else {
          if (k >= warmupCount) waitedForSlot++;
          backlog.push(k);
        }
        k++;
      }
      if (k < to) await sleep(Math.max(0, t0 + k * intervalMs - performance.now()));
    }
  };

  const lag = monitorEventLoopDelay({ resolution: 1 });
  await pace(0, warmupCount);
  lag.enable();
  const cpu0 = process.cpuUsage();
  // Not awaited here: the scrape must not hold up the schedule.
  const started = opts.hooks.atStart();
  await pace(warmupCount, total);
  const cpu = process.cpuUsage(cpu0);
  lag.disable();
  await started;
  const sentAll = performance.now();
  if (inFlight > 0) {
    const done = new Promise<void>((r) => (idle = r));
    const ok = await Promise.race([done.then(() => true), sleep(DRAIN_TIMEOUT_MS, false)]);
    if (!ok) throw new Error(`paced appends did not finish within ${DRAIN_TIMEOUT_MS} ms`);
  }
  const drainMs = Math.max(0, performance.now() - Math.max(sentAll, windowEnd));
  await opts.hooks.atEnd();
  const dedup = await checkDedup(producers, 4);
  return {
    targetRate: opts.rate,
    slots: opts.slots,
    windowSeconds: opts.seconds,
    scheduled: total - warmupCount,
    acked,
    achievedRate: ackedInWindow / ((windowEnd - windowStart) / 1000),
    drainMs,
    latency: rec.summary(),
    latencyFromSchedule: recSched.summary(),
    waitedForSlot,
    errors,
    clientCpuCores: (cpu.user + cpu.system) / 1e6 / opts.seconds,
    clientLoopLagP99Ms: Math.max(0, lag.percentile(99) / 1e6 - 1),
    dedup,
  };
}
