// The Vecraft side: a standalone process, reached through the public VecraftService over
// gRPC (Connect's Node transport, HTTP/2 on loopback), as an application would.
//
//   ingest          batches of `batch` records, `inflight` requests in flight (each on its
//                   own connection), from the first Upsert to the last acknowledgement;
//                   then a SESSION search with the largest session token, which waits
//                   until every shard applied (SQLite and HNSW) everything acknowledged:
//                   that is "searchable".
//   sweep           EVENTUAL searches (k = 10) over the query set at each ef and client count.
//   time-to-search  single-record upserts in a quiet period; after each ack, EVENTUAL
//                   searches for the record's own vector, back to back (the next one is
//                   sent when the previous answer arrives, no sleep), until the id is
//                   among the hits.
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Consistency, Metric, UpsertRequestSchema, UpsertResponseSchema, type VectorRecordSchema } from "@vecraft/rpc";
import { LatencyRecorder, delta, type LatencySummary } from "../journal/stats.js";
import { busyCores, readCpuTimes } from "../journal/machine.js";
import { DIM, type Split } from "./dataset.js";
import { frame, RawGrpcClient } from "./raw-grpc.js";
import type { Standalone, VecraftClient } from "./standalone.js";
import { runAsync, type QueryCell } from "./sweep.js";

export const COLLECTION = "fashion_mnist";

type RecordInit = MessageInitShape<typeof VectorRecordSchema>;

const UPSERT_PATH = "/vecraft.v1.VecraftService/Upsert";

/**
 * Upsert requests, prepared before the clock starts. "raw": serialized and framed here
 * (the time protobuf-es took is reported as the client's encoding cost) and sent as bytes
 * over node:http2; "connect": message objects handed to Connect's client, which
 * serializes them while the clock runs (on the same 2 cores as the server).
 */
export interface PreparedBatches {
  readonly client: "raw" | "connect";
  /** The collection the requests write to (it is inside the serialized bytes). */
  readonly collection: string;
  readonly batches: readonly { readonly records: number; readonly framed?: Buffer; readonly init?: RecordInit[] }[];
  readonly records: number;
  readonly batchSize: number;
  /** protobuf-es toBinary time for every request (raw only). */
  readonly encodeSeconds: number;
  readonly probeVector: number[];
}

function recordsOf(train: Split, start: number, end: number): RecordInit[] {
  const records: RecordInit[] = [];
  for (let i = start; i < end; i++) {
    records.push({ id: String(i), vector: Array.from(train.pixels.subarray(i * DIM, (i + 1) * DIM)), metadata: { label: train.labels[i]! } });
  }
  return records;
}

export function prepareBatches(train: Split, batchSize: number, client: "raw" | "connect", collection = COLLECTION): PreparedBatches {
  const batches: { records: number; framed?: Buffer; init?: RecordInit[] }[] = [];
  let encodeSeconds = 0;
  for (let start = 0; start < train.count; start += batchSize) {
    const end = Math.min(train.count, start + batchSize);
    const init = recordsOf(train, start, end);
    if (client === "connect") {
      batches.push({ records: init.length, init });
      continue;
    }
    const msg = create(UpsertRequestSchema, { collection, records: init });
    const t0 = performance.now();
    const bytes = toBinary(UpsertRequestSchema, msg);
    encodeSeconds += (performance.now() - t0) / 1000;
    batches.push({ records: init.length, framed: frame(bytes) });
  }
  return { client, collection, batches, records: train.count, batchSize, encodeSeconds, probeVector: Array.from(train.pixels.subarray(0, DIM)) };
}

/** `name` and `replicationFactor` are for the cluster benchmark (several collections, one replica each). */
export async function createCollection(client: VecraftClient, shards: number, opts: { name?: string; replicationFactor?: number } = {}): Promise<Record<string, unknown>> {
  const res = await client.createCollection({ name: opts.name ?? COLLECTION, dimension: DIM, metric: Metric.L2, shards, replicationFactor: opts.replicationFactor ?? 0 });
  const c = res.collection;
  return { name: c?.name, shards: c?.shards, replicationFactor: c?.replicationFactor, hnsw: { m: c?.hnsw?.m, efConstruction: c?.hnsw?.efConstruction, efSearch: c?.hnsw?.efSearch } };
}

function maxToken(a: string, b: string): string {
  if (a === "") return b;
  if (b === "") return a;
  return BigInt(a) >= BigInt(b) ? a : b;
}

interface ServerWindow {
  readonly serverCpuCores: number;
  readonly clientCpuCores: number;
  readonly machineBusyCores: number;
}

/** Server CPU (its process_cpu_seconds_total), this process's CPU and the machine's busy cores over a window. */
async function window<T>(server: Standalone, body: () => Promise<T>): Promise<{ value: T; seconds: number; m0: Map<string, number>; m1: Map<string, number> } & ServerWindow> {
  const m0 = await server.metrics();
  const c0 = process.cpuUsage();
  const k0 = readCpuTimes();
  const t0 = performance.now();
  const value = await body();
  const seconds = (performance.now() - t0) / 1000;
  const k1 = readCpuTimes();
  const c1 = process.cpuUsage(c0);
  const m1 = await server.metrics();
  return {
    value,
    seconds,
    m0,
    m1,
    serverCpuCores: delta(m0, m1, "process_cpu_seconds_total") / seconds,
    clientCpuCores: (c1.user + c1.system) / 1e6 / seconds,
    machineBusyCores: busyCores(k0, k1),
  };
}

export interface IngestResult {
  readonly client: "raw" | "connect";
  /** Client-side protobuf-es encoding, done before the clock for the raw client (records per second of one core). */
  readonly clientEncodeRecordsPerSec: number;
  readonly records: number;
  readonly batch: number;
  readonly inflight: number;
  readonly requests: number;
  /** First Upsert sent to last acknowledgement. */
  readonly ackSeconds: number;
  readonly ackRecordsPerSec: number;
  /** First Upsert sent to the SESSION search (with the last token) answering. */
  readonly searchableSeconds: number;
  readonly searchableRecordsPerSec: number;
  /** Last acknowledgement to searchable: the apply/index backlog. */
  readonly backlogSeconds: number;
  readonly upsertLatency: LatencySummary;
  readonly serverCpuCores: number;
  readonly clientCpuCores: number;
  readonly machineBusyCores: number;
  readonly searchableAttempts: number;
}

export async function ingest(server: Standalone, prepared: PreparedBatches, inflight: number, maxSeconds: number, log: (s: string) => void): Promise<IngestResult> {
  const monitor = server.newClient();
  const { batches, records } = prepared;
  const rec = new LatencyRecorder(batches.length);
  let token = "";
  let lastAck = 0;
  let attempts = 0;
  let t0 = 0;
  const raws: RawGrpcClient[] = [];
  const w = await window(server, async () => {
    // One connection per request in flight.
    const senders: ((b: (typeof batches)[number]) => Promise<{ upserted: number; sessionToken: string }>)[] = Array.from({ length: inflight }, () => {
      if (prepared.client === "raw") {
        const raw = new RawGrpcClient(server.url);
        raws.push(raw);
        return async (b) => fromBinary(UpsertResponseSchema, await raw.call(UPSERT_PATH, b.framed!, 120_000));
      }
      const client = server.newClient();
      return (b) => client.upsert({ collection: prepared.collection, records: b.init! }, { timeoutMs: 120_000 });
    });
    t0 = performance.now();
    let next = 0;
    const worker = async (send: (typeof senders)[number]): Promise<void> => {
      while (next < batches.length) {
        const b = batches[next++]!;
        const s = performance.now();
        const res = await send(b);
        const now = performance.now();
        rec.add(now - s);
        lastAck = Math.max(lastAck, now);
        if (res.upserted !== b.records) throw new Error(`upsert acknowledged ${res.upserted} of ${b.records} records`);
        token = maxToken(token, res.sessionToken);
      }
    };
    await Promise.all(senders.map(worker));
    log(`  ${records} records acknowledged in ${((lastAck - t0) / 1000).toFixed(1)} s; waiting until searchable...`);
    // SESSION with the last token: the storage node answers once it applied through it.
    const deadline = t0 + maxSeconds * 1000;
    const probe = prepared.probeVector;
    for (;;) {
      attempts++;
      try {
        await monitor.search(
          { collection: prepared.collection, vector: probe, k: 1, consistency: { level: Consistency.SESSION, sessionToken: token } },
          { timeoutMs: Math.max(1000, Math.min(60_000, deadline - performance.now())) },
        );
        break;
      } catch (e) {
        const ce = ConnectError.from(e);
        if (ce.code !== Code.DeadlineExceeded && ce.code !== Code.Unavailable) throw e;
        if (performance.now() >= deadline) throw new Error(`not searchable ${maxSeconds} s after the first upsert: ${ce.message}`);
      }
    }
    return performance.now();
  });
  for (const r of raws) r.close();
  const searchableAt = w.value;
  const ackSeconds = (lastAck - t0) / 1000;
  const searchableSeconds = (searchableAt - t0) / 1000;
  return {
    client: prepared.client,
    clientEncodeRecordsPerSec: prepared.encodeSeconds > 0 ? records / prepared.encodeSeconds : Number.NaN,
    records,
    batch: prepared.batchSize,
    inflight,
    requests: batches.length,
    ackSeconds,
    ackRecordsPerSec: records / ackSeconds,
    searchableSeconds,
    searchableRecordsPerSec: records / searchableSeconds,
    backlogSeconds: (searchableAt - lastAck) / 1000,
    upsertLatency: rec.summary(),
    serverCpuCores: w.serverCpuCores,
    clientCpuCores: w.clientCpuCores,
    machineBusyCores: w.machineBusyCores,
    searchableAttempts: attempts,
  };
}

export interface VecraftCell extends QueryCell {
  readonly ef: number;
  readonly serverCpuCores: number;
  /** Mean shard search time inside the storage node (HNSW + SQLite fetch + exact re-scoring), from its histogram. */
  readonly meanShardSearchMs: number;
  /** Mean query-processor fan-out time (its calls to the shards), from its histogram. */
  readonly meanFanoutMs: number;
}

export async function sweep(
  server: Standalone,
  queries: readonly number[][],
  opts: {
    readonly efs: readonly number[];
    readonly concurrencies: readonly number[];
    readonly k: number;
    readonly connections: number;
    readonly warmup: number;
    readonly maxSeconds: number;
    readonly recall: (q: number, ids: number[]) => number;
    readonly log: (s: string) => void;
    /** Default COLLECTION. */
    readonly collection?: string;
  },
): Promise<VecraftCell[]> {
  const clients = Array.from({ length: opts.connections }, () => server.newClient());
  const cells: VecraftCell[] = [];
  for (const ef of opts.efs) {
    for (const concurrency of opts.concurrencies) {
      let n = 0;
      const search = async (q: number): Promise<number[]> => {
        const client = clients[n++ % clients.length]!;
        const res = await client.search(
          { collection: opts.collection ?? COLLECTION, vector: queries[q]!, k: opts.k, ef: Math.max(ef, opts.k), consistency: { level: Consistency.EVENTUAL } },
          { timeoutMs: 30_000 },
        );
        return res.hits.map((h) => Number(h.id));
      };
      const w = await window(server, () => runAsync({ queries: queries.length, concurrency, warmup: opts.warmup, maxSeconds: opts.maxSeconds }, search, opts.recall));
      const mean = (name: string): number => (delta(w.m0, w.m1, `${name}_sum`) / delta(w.m0, w.m1, `${name}_count`)) * 1000;
      const cell: VecraftCell = {
        ...w.value,
        ef,
        // The window includes the warm-up: server CPU is over both.
        serverCpuCores: w.serverCpuCores,
        meanShardSearchMs: mean("vecraft_storage_search_duration_seconds"),
        meanFanoutMs: mean("vecraft_query_fanout_duration_seconds"),
      };
      cells.push(cell);
      opts.log(
        `    ef ${ef}, ${concurrency} client${concurrency > 1 ? "s" : ""}: recall ${cell.recall.toFixed(4)}, ${Math.round(cell.qps)} QPS, ` +
          `p50 ${cell.latency.p50Ms.toFixed(2)} ms, p99 ${cell.latency.p99Ms.toFixed(2)} ms, shard search ${cell.meanShardSearchMs.toFixed(2)} ms, ` +
          `server cpu ${cell.serverCpuCores.toFixed(2)}, client cpu ${cell.clientCpuCores.toFixed(2)}${cell.errors ? `, ${cell.errors} errors (${cell.firstError})` : ""}`,
      );
    }
  }
  return cells;
}

export interface TimeToSearchable {
  readonly samples: number;
  readonly found: number;
  readonly timeouts: number;
  /**
   * Records the back-to-back searches never returned within the timeout, classified then:
   * `applied` = an EVENTUAL Get finds the record (so it was visible, and the HNSW search
   * for its own vector missed it: an ANN recall miss, not a visibility delay);
   * `foundAtEf512` = a search with ef 512 returns it.
   */
  readonly missed: { readonly id: string; readonly applied: boolean; readonly foundAtEf512: boolean }[];
  /** Ack received to the answer of the first search that had the id. */
  readonly ackToSearchable: LatencySummary;
  /** Ack received to the sending of that search: a lower bound. */
  readonly ackToSearchableLowerBound: LatencySummary;
  readonly upsertLatency: LatencySummary;
  /** Searches per sample (1 = visible at the first search after the ack). */
  readonly meanPolls: number;
  readonly maxPolls: number;
  readonly gapMs: readonly [number, number];
}

export async function timeToSearchable(
  server: Standalone,
  probes: Split,
  opts: { readonly samples: number; readonly k: number; readonly timeoutMs: number; readonly gapMs: readonly [number, number]; readonly log: (s: string) => void },
): Promise<TimeToSearchable> {
  const client = server.newClient();
  const n = Math.min(opts.samples, probes.count);
  const upper = new LatencyRecorder(n);
  const lower = new LatencyRecorder(n);
  const acks = new LatencyRecorder(n);
  let timeouts = 0;
  const missed: { id: string; applied: boolean; foundAtEf512: boolean }[] = [];
  let polls = 0;
  let maxPolls = 0;
  for (let i = 0; i < n; i++) {
    // Random gaps: samples land at every phase of the journal's tick and the apply loop.
    await sleep(opts.gapMs[0] + Math.random() * (opts.gapMs[1] - opts.gapMs[0]));
    const id = `probe-${i}`;
    const vector = Array.from(probes.pixels.subarray(i * DIM, (i + 1) * DIM));
    const record: RecordInit = { id, vector, metadata: { label: probes.labels[i]!, probe: true } };
    const s = performance.now();
    await client.upsert({ collection: COLLECTION, records: [record] }, { timeoutMs: 30_000 });
    const ack = performance.now();
    acks.add(ack - s);
    let found = false;
    let p = 0;
    while (!found && performance.now() - ack < opts.timeoutMs && p < 100_000) {
      const sent = performance.now();
      const res = await client.search({ collection: COLLECTION, vector, k: opts.k, consistency: { level: Consistency.EVENTUAL } }, { timeoutMs: 30_000 });
      p++;
      if (res.hits.some((h) => h.id === id)) {
        found = true;
        upper.add(performance.now() - ack);
        lower.add(sent - ack);
      }
    }
    polls += p;
    maxPolls = Math.max(maxPolls, p);
    if (!found) {
      timeouts++;
      const got = await client.get({ collection: COLLECTION, ids: [id], consistency: { level: Consistency.EVENTUAL } }, { timeoutMs: 30_000 });
      const wide = await client.search({ collection: COLLECTION, vector, k: opts.k, ef: 512, consistency: { level: Consistency.EVENTUAL } }, { timeoutMs: 30_000 });
      missed.push({ id, applied: got.records.some((r) => r.id === id), foundAtEf512: wide.hits.some((h) => h.id === id) });
    }
  }
  const result: TimeToSearchable = {
    samples: n,
    found: upper.count,
    timeouts,
    missed,
    ackToSearchable: upper.summary(),
    ackToSearchableLowerBound: lower.summary(),
    upsertLatency: acks.summary(),
    meanPolls: polls / Math.max(1, n),
    maxPolls,
    gapMs: opts.gapMs,
  };
  opts.log(
    `    ${result.found}/${n} found${missed.length ? ` (missed: ${JSON.stringify(missed)})` : ""}: ack to searchable p50 ${result.ackToSearchable.p50Ms.toFixed(2)} ms, p99 ${result.ackToSearchable.p99Ms.toFixed(2)} ms, ` +
      `max ${result.ackToSearchable.maxMs.toFixed(2)} ms (${result.meanPolls.toFixed(2)} searches per sample); upsert p50 ${result.upsertLatency.p50Ms.toFixed(2)} ms`,
  );
  return result;
}

export interface RpcFloor {
  /** ListCollections: client to gateway and back (the catalog is cached in the gateway). */
  readonly listCollections: LatencySummary;
  /** Get of one id, EVENTUAL: gateway, query processor and storage node, tiny payloads. */
  readonly getOne: LatencySummary;
  /** Search k=10 at the collection's ef through the typed client, for comparison (same queries as the sweep). */
  readonly search: LatencySummary;
  readonly calls: number;
}

/** Sequential calls (one client): what the RPC path costs without the vector work. */
export async function rpcFloor(server: Standalone, queries: readonly number[][], calls: number): Promise<RpcFloor> {
  const client = server.newClient();
  const list = new LatencyRecorder(calls);
  const get = new LatencyRecorder(calls);
  const search = new LatencyRecorder(calls);
  for (let i = 0; i < calls + 20; i++) {
    const record = i < 20 ? undefined : i - 20;
    let s = performance.now();
    await client.listCollections({}, { timeoutMs: 10_000 });
    if (record !== undefined) list.add(performance.now() - s);
    s = performance.now();
    await client.get({ collection: COLLECTION, ids: [String(i % 1000)], consistency: { level: Consistency.EVENTUAL } }, { timeoutMs: 10_000 });
    if (record !== undefined) get.add(performance.now() - s);
    s = performance.now();
    await client.search({ collection: COLLECTION, vector: queries[i % queries.length]!, k: 10, consistency: { level: Consistency.EVENTUAL } }, { timeoutMs: 10_000 });
    if (record !== undefined) search.add(performance.now() - s);
  }
  return { listCollections: list.summary(), getOne: get.summary(), search: search.summary(), calls };
}
