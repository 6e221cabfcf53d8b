// A partition replica in single-replica mode: it is the leader of its own log. It owns
// offset and timestamp assignment, producer deduplication, ticks and barriers; the log
// below it owns durability. Replication (JOURNAL-PROTOCOL.md) slots in between the two:
// "durable" becomes "durable on a majority" without changing this API.
import { setTimeout as delay } from "node:timers/promises";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { ClockOffsetError, type HybridLogicalClock } from "@vecraft/hlc";
import { InvalidArgumentError, OutOfRangeError, UnavailableError, type Logger } from "@vecraft/common";
import { DataPayloadSchema, DdlPayloadSchema, type DataPayload, type DdlPayload } from "@vecraft/rpc";
import { ProducerTable, type DedupOptions } from "./dedup.js";
import { RecordType, type DecodedRecord } from "./log/codec.js";
import { PartitionLog, type LogObserver, type RecoveryReport } from "./log/partition-log.js";
import type { LogFileSystem } from "./log/file-system.js";

export type EntryPayload = { case: "data"; value: DataPayload } | { case: "ddl"; value: DdlPayload };

export interface AppendInput {
  readonly producerId: bigint;
  readonly producerEpoch: number;
  readonly firstSeq: number;
  readonly causalTs: bigint;
  readonly entries: readonly EntryPayload[];
}

export interface AppendOutcome {
  readonly epoch: number;
  readonly offsets: number[];
  readonly ts: bigint[];
  readonly deduplicated: boolean;
}

export interface Position {
  readonly offset: number;
  readonly ts: bigint;
}

export interface PartitionOptions {
  readonly partition: number;
  readonly dir: string;
  readonly fs: LogFileSystem;
  readonly hlc: HybridLogicalClock;
  readonly logger: Logger;
  readonly segmentBytes: number;
  readonly maxBatchBytes: number;
  readonly tickIntervalMs: number;
  readonly dedup: DedupOptions;
  readonly onFatal: (err: Error) => void;
  readonly observer?: LogObserver;
}

/** A committed record with its payload decoded. */
export interface CommittedEntry {
  readonly partition: number;
  readonly record: DecodedRecord;
  readonly payload: EntryPayload | undefined;
}

export function decodePayload(rec: DecodedRecord): EntryPayload | undefined {
  if (rec.type === RecordType.Data) return { case: "data", value: fromBinary(DataPayloadSchema, rec.payload) };
  if (rec.type === RecordType.Ddl) return { case: "ddl", value: fromBinary(DdlPayloadSchema, rec.payload) };
  return undefined;
}

export class Partition {
  private tickTimer: NodeJS.Timeout | undefined;
  private lastEnqueueMs = 0;
  private openBarrier: { offset: number; ts: bigint; durable: Promise<void> } | undefined;
  private closing = false;

  private constructor(
    private readonly opts: PartitionOptions,
    readonly log: PartitionLog,
    private readonly producers: ProducerTable,
    readonly epoch: number,
    readonly recovery: RecoveryReport,
  ) {}

  /**
   * Recovers the log, rebuilds the HLC high-water mark and the producer table from it,
   * starts a new epoch with a durable EPOCH_START record, and starts the ticker.
   */
  static async open(opts: PartitionOptions): Promise<Partition> {
    const producers = new ProducerTable(opts.dedup);
    const recovered = Promise.resolve();
    let maxTs = 0n;
    const { log, report } = await PartitionLog.open(
      {
        dir: opts.dir,
        partition: opts.partition,
        fs: opts.fs,
        segmentBytes: opts.segmentBytes,
        maxBatchBytes: opts.maxBatchBytes,
        onFatal: opts.onFatal,
        ...(opts.observer ? { observer: opts.observer } : {}),
      },
      (rec) => {
        if (rec.ts > maxTs) maxTs = rec.ts;
        if (rec.producerId !== 0n) producers.record(rec.producerId, rec.producerEpoch, rec.seq, rec.offset, [rec.ts], recovered);
      },
    );
    opts.hlc.seed(maxTs);
    const epoch = log.lastEpoch + 1;
    const p = new Partition(opts, log, producers, epoch, report);
    await p.appendControl(RecordType.EpochStart).durable;
    p.startTicker();
    return p;
  }

  get partition(): number {
    return this.opts.partition;
  }

  get commitOffset(): number {
    return this.log.commitOffset;
  }

  get closedTs(): bigint {
    return this.log.commitTs;
  }

  get producerCount(): number {
    return this.producers.size;
  }

  /**
   * Appends a batch: deduplicates retries, applies the causal token, stamps offsets and
   * timestamps, and resolves once every entry is durable.
   */
  async append(input: AppendInput): Promise<AppendOutcome> {
    this.assertServing();
    if (input.producerId !== 0n) {
      const n = input.entries.length;
      const verdict = this.producers.check(input.producerId, input.producerEpoch, input.firstSeq, n);
      if (verdict.kind === "retry") {
        await verdict.durable;
        return { epoch: this.epoch, offsets: verdict.offsets, ts: verdict.ts, deduplicated: true };
      }
    }
    if (input.causalTs !== 0n) {
      try {
        this.opts.hlc.update(input.causalTs);
      } catch (e) {
        if (e instanceof ClockOffsetError) {
          throw new InvalidArgumentError(`causal_ts is ${e.remoteWallMs - e.localWallMs} ms ahead of the journal's clock (at most ${e.maxOffsetMs} ms allowed): ${e.message}`);
        }
        throw e;
      }
    }
    // Stamp synchronously so that offsets, timestamps and log order agree; the batch is
    // appended atomically (all of it survives a crash, or none).
    const offsets: number[] = [];
    const ts: bigint[] = [];
    const records = input.entries.map((entry, i) => {
      const offset = this.log.lastOffset + 1 + i;
      const t = this.opts.hlc.now();
      offsets.push(offset);
      ts.push(t);
      return {
        header: {
          type: entry.case === "data" ? RecordType.Data : RecordType.Ddl,
          epoch: this.epoch,
          offset,
          ts: t,
          producerId: input.producerId,
          producerEpoch: input.producerEpoch,
          seq: input.producerId !== 0n ? input.firstSeq + i : 0,
        },
        payload: entry.case === "data" ? toBinary(DataPayloadSchema, entry.value) : toBinary(DdlPayloadSchema, entry.value),
      };
    });
    const durable = this.log.append(records);
    this.lastEnqueueMs = Date.now();
    if (input.producerId !== 0n) {
      this.producers.record(input.producerId, input.producerEpoch, input.firstSeq, offsets[0] as number, ts, durable);
    }
    await durable;
    return { epoch: this.epoch, offsets, ts, deduplicated: false };
  }

  /**
   * A committed position at or after every entry acknowledged before this call. Barriers
   * that arrive while a barrier tick is still queued share it (so a burst of strong reads
   * costs one fsync); its ts is above every acknowledged entry's ts.
   */
  async barrier(): Promise<Position> {
    this.assertServing();
    if (this.openBarrier && this.openBarrier.offset > this.log.commitOffset) {
      const b = this.openBarrier;
      await b.durable;
      return { offset: b.offset, ts: b.ts };
    }
    const pos = this.appendControl(RecordType.Tick);
    this.openBarrier = { offset: pos.offset, ts: pos.ts, durable: pos.durable };
    await pos.durable;
    return { offset: pos.offset, ts: pos.ts };
  }

  /** Reads committed records from `from`. */
  async read(from: number, maxEntries: number, maxBytes: number): Promise<DecodedRecord[]> {
    this.assertServing();
    if (from < this.log.firstOffset) throw new OutOfRangeError(`partition ${this.partition}: offset ${from} is before the first stored offset ${this.log.firstOffset}`);
    if (from > this.log.commitOffset + 1) {
      throw new OutOfRangeError(`partition ${this.partition}: offset ${from} is past the end of the log (commit offset ${this.log.commitOffset})`);
    }
    return this.log.read(from, maxEntries, maxBytes);
  }

  /** Waits until the commit offset reaches `offset`, the signal aborts, or `timeoutMs` passes. */
  async waitForCommit(offset: number, timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (this.log.commitOffset >= offset) return;
    const ac = new AbortController();
    const onAbort = (): void => ac.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    const off = this.log.onCommit(() => {
      if (this.log.commitOffset >= offset) ac.abort();
    });
    try {
      await delay(timeoutMs, undefined, { signal: ac.signal });
    } catch {
      // The abort is how the wait ends early (commit reached, or the caller gave up); the
      // caller checks which by looking at the commit offset and its own signal.
    } finally {
      off();
      signal.removeEventListener("abort", onAbort);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    await this.log.close();
  }

  private assertServing(): void {
    if (this.closing) throw new UnavailableError(`partition ${this.partition} is shutting down`);
    const failure = this.log.failure;
    if (failure) throw new UnavailableError(`partition ${this.partition} stopped after a write failure: ${failure.message}`);
  }

  /** Appends a TICK or EPOCH_START record (no producer, no payload). */
  private appendControl(type: RecordType): { offset: number; ts: bigint; durable: Promise<void> } {
    const offset = this.log.lastOffset + 1;
    const ts = this.opts.hlc.now();
    const durable = this.log.append([{ header: { type, epoch: this.epoch, offset, ts, producerId: 0n, producerEpoch: 0, seq: 0 }, payload: new Uint8Array(0) }]);
    this.lastEnqueueMs = Date.now();
    return { offset, ts, durable };
  }

  private startTicker(): void {
    const every = this.opts.tickIntervalMs;
    if (every <= 0) return;
    this.tickTimer = setInterval(() => {
      if (this.closing || this.log.failure) return;
      if (Date.now() - this.lastEnqueueMs < every) return;
      // A failed tick means the log failed; onFatal has already been told.
      this.appendControl(RecordType.Tick).durable.catch((e: unknown) => {
        this.opts.logger.error("tick append failed", { partition: this.partition, err: e });
      });
    }, every);
    this.tickTimer.unref();
  }
}
