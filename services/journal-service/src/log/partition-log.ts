// One partition's durable log: recovery at open, group commit on append, reads of the
// committed prefix. Offsets and timestamps are chosen by the caller (the partition, which
// owns the HLC); the log checks the invariants and makes entries durable in offset order.
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { DataLossError, InternalError } from "@vecraft/common";
import { decodeRecordAt, encodeRecord, type DecodedRecord, type RecordHeader } from "./codec.js";
import type { LogFile, LogFileSystem } from "./file-system.js";
import {
  decodeSegmentHeader,
  encodeSegmentHeader,
  parseSegmentFileName,
  scanSegment,
  segmentFileName,
  SEGMENT_HEADER_BYTES,
  type ScanState,
} from "./segment.js";

export interface PartitionLogOptions {
  readonly dir: string;
  readonly partition: number;
  readonly fs: LogFileSystem;
  /** Roll to a new segment when the active one would grow past this. */
  readonly segmentBytes: number;
  /** Upper bound on the bytes written by one group commit. */
  readonly maxBatchBytes: number;
  /** Called once when a write or fsync fails: the process must stop (never retry fsync). */
  readonly onFatal: (err: Error) => void;
  readonly observer?: LogObserver;
}

/** Hooks for metrics; all optional. */
export interface LogObserver {
  fsyncSeconds?(seconds: number): void;
  batchCommitted?(entries: number, bytes: number): void;
  segmentRolled?(baseOffset: number): void;
}

export interface RecoveryReport {
  readonly segments: number;
  readonly entries: number;
  /** Bytes removed from the end of the last segment (a torn tail), or 0. */
  readonly truncatedBytes: number;
  readonly tornReason?: string;
}

/** The log found corruption it must not repair by itself; the replica stops serving. */
export class CorruptLogError extends DataLossError {
  constructor(
    readonly partition: number,
    readonly segment: string,
    readonly position: number,
    readonly offset: number,
    reason: string,
  ) {
    super(
      `partition ${partition}: corrupt journal record in ${segment} at byte ${position} (near offset ${offset}): ${reason}. ` +
        `The replica refuses to serve rather than drop committed entries; restore the segment or rebuild this replica from a peer.`,
    );
  }
}

class Segment {
  /** File positions of this segment's records, indexed by offset - baseOffset. */
  private positions = new Float64Array(1024);
  count = 0;

  constructor(
    readonly baseOffset: number,
    readonly path: string,
    readonly file: LogFile,
    public size: number,
  ) {}

  addPosition(pos: number): void {
    if (this.count === this.positions.length) {
      const next = new Float64Array(this.positions.length * 2);
      next.set(this.positions);
      this.positions = next;
    }
    this.positions[this.count++] = pos;
  }

  positionOf(offset: number): number {
    const i = offset - this.baseOffset;
    if (i < 0 || i >= this.count) throw new InternalError(`offset ${offset} is not in segment ${this.baseOffset}`);
    return this.positions[i] as number;
  }

  /** The byte just after the record at `offset`. */
  endOf(offset: number): number {
    const i = offset - this.baseOffset + 1;
    return i < this.count ? (this.positions[i] as number) : this.size;
  }

  get lastOffset(): number {
    return this.baseOffset + this.count - 1;
  }
}

/** One atomic batch waiting for the group commit. */
interface PendingBatch {
  readonly lastOffset: number;
  readonly lastTs: bigint;
  readonly frames: Buffer[];
  readonly bytes: number;
}

interface AckWaiter {
  readonly offset: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

export class PartitionLog {
  private readonly segments: Segment[] = [];
  private pending: PendingBatch[] = [];
  private ackWaiters: AckWaiter[] = [];
  private flushing = false;
  private failed: Error | undefined;
  private closed = false;
  private commitListeners = new Set<() => void>();
  private flushIdle: Promise<void> = Promise.resolve();
  private resolveFlushIdle: (() => void) | undefined;

  /** Highest offset handed to append (durable or not). */
  lastOffset = 0;
  lastTs = 0n;
  lastEpoch = 0;
  /** Highest durable offset; everything at or below it is committed. */
  commitOffset = 0;
  commitTs = 0n;

  private constructor(
    private readonly opts: PartitionLogOptions,
    private incarnation: Uint8Array,
  ) {}

  /**
   * Opens (or creates) the log in `opts.dir`, recovering it: stray temp files are removed,
   * a torn tail is truncated and synced, corruption throws CorruptLogError. `onRecord`
   * sees every recovered record in order (to rebuild the HLC and dedup state).
   */
  static async open(
    opts: PartitionLogOptions,
    onRecord: (rec: DecodedRecord) => void,
  ): Promise<{ log: PartitionLog; report: RecoveryReport }> {
    const { fs, dir } = opts;
    await fs.mkdirp(dir);
    const names = await fs.readdir(dir);
    let removedTemp = false;
    for (const name of names) {
      if (name.endsWith(".tmp")) {
        // A segment whose creation did not finish: it was never renamed, so never written to.
        await fs.unlink(join(dir, name));
        removedTemp = true;
      }
    }
    if (removedTemp) await fs.syncDir(dir);
    const bases = names
      .map(parseSegmentFileName)
      .filter((b): b is number => b !== undefined)
      .sort((a, b) => a - b);

    const state: ScanState = { nextOffset: bases[0] ?? 1, lastTs: 0n, lastEpoch: 0 };
    let incarnation: Uint8Array | undefined;
    let entries = 0;
    let truncatedBytes = 0;
    let tornReason: string | undefined;
    const log = new PartitionLog(opts, new Uint8Array(16));
    for (let i = 0; i < bases.length; i++) {
      const base = bases[i] as number;
      const name = segmentFileName(base);
      const path = join(dir, name);
      const file = await fs.open(path);
      const size = await file.size();
      const bytes = await file.read(0, size);
      const header = decodeSegmentHeader(bytes);
      if (typeof header === "string") {
        await file.close();
        throw new CorruptLogError(opts.partition, name, 0, state.nextOffset, header);
      }
      if (header.baseOffset !== base || header.partition !== opts.partition) {
        await file.close();
        throw new CorruptLogError(
          opts.partition,
          name,
          0,
          state.nextOffset,
          `segment header says partition ${header.partition} base ${header.baseOffset}, file name says partition ${opts.partition} base ${base}`,
        );
      }
      if (base !== state.nextOffset) {
        await file.close();
        throw new CorruptLogError(opts.partition, name, 0, state.nextOffset, `segment starts at offset ${base}, expected ${state.nextOffset} (a segment is missing)`);
      }
      incarnation ??= header.incarnation;
      const seg = new Segment(base, path, file, size);
      const isLast = i === bases.length - 1;
      const res = scanSegment(bytes, SEGMENT_HEADER_BYTES, state, isLast, (rec, pos) => {
        seg.addPosition(pos);
        entries++;
        onRecord(rec);
      });
      if (res.outcome.kind === "corrupt") {
        await file.close();
        for (const s of log.segments) await s.file.close();
        throw new CorruptLogError(opts.partition, name, res.outcome.at, state.nextOffset, res.outcome.reason);
      }
      if (res.validEnd < size) {
        // A torn tail (or trailing zeros): cut it so the next append starts on a clean frame.
        truncatedBytes = size - res.validEnd;
        if (res.outcome.kind === "torn") tornReason = res.outcome.reason;
        await file.truncate(res.validEnd);
        await file.datasync();
        seg.size = res.validEnd;
      }
      log.segments.push(seg);
    }
    log.lastOffset = state.nextOffset - 1;
    log.lastTs = state.lastTs;
    log.lastEpoch = state.lastEpoch;
    log.commitOffset = log.lastOffset;
    log.commitTs = log.lastTs;
    log.incarnation = incarnation ?? randomBytes(16);
    if (log.segments.length === 0) await log.createSegment(state.nextOffset);
    const report: RecoveryReport = { segments: log.segments.length, entries, truncatedBytes, ...(tornReason !== undefined ? { tornReason } : {}) };
    return { log, report };
  }

  get partition(): number {
    return this.opts.partition;
  }

  get firstOffset(): number {
    return this.segments[0]?.baseOffset ?? 1;
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  /** The error that stopped the log, if any. */
  get failure(): Error | undefined {
    return this.failed;
  }

  /**
   * Frames and queues an atomic batch of records: after a crash either all of them are
   * in the log or none (their headers carry batchRemaining). Offsets must continue from
   * lastOffset and timestamps must increase; both are checked because a violation would
   * corrupt the log's order. Resolves once the whole batch is durable.
   */
  append(records: readonly { header: Omit<RecordHeader, "batchRemaining">; payload: Uint8Array }[]): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.closed) return Promise.reject(new InternalError(`partition ${this.partition} log is closed`));
    if (records.length === 0) return Promise.resolve();
    let offset = this.lastOffset;
    let ts = this.lastTs;
    for (const { header } of records) {
      if (header.offset !== offset + 1) {
        return Promise.reject(new InternalError(`partition ${this.partition}: append at offset ${header.offset}, expected ${offset + 1}`));
      }
      if (header.ts <= ts) {
        return Promise.reject(new InternalError(`partition ${this.partition}: ts ${header.ts} is not above the previous ${ts}`));
      }
      offset = header.offset;
      ts = header.ts;
    }
    const frames = records.map(({ header, payload }, i) => encodeRecord({ ...header, batchRemaining: records.length - 1 - i }, payload));
    const last = records[records.length - 1] as (typeof records)[number];
    this.pending.push({ lastOffset: offset, lastTs: ts, frames, bytes: frames.reduce((n, f) => n + f.length, 0) });
    this.lastOffset = offset;
    this.lastTs = ts;
    this.lastEpoch = last.header.epoch;
    const done = new Promise<void>((resolve, reject) => {
      this.ackWaiters.push({ offset, resolve, reject });
    });
    this.kick();
    return done;
  }

  /** Resolves when everything appended so far is durable (or the log failed). */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushIdle;
  }

  /** Calls `fn` each time the commit offset advances; returns an unsubscribe function. */
  onCommit(fn: () => void): () => void {
    this.commitListeners.add(fn);
    return () => this.commitListeners.delete(fn);
  }

  /**
   * Reads committed records from `fromOffset`: at most `maxEntries`, within one segment,
   * and at most `maxBytes` (but always at least one record).
   */
  async read(fromOffset: number, maxEntries: number, maxBytes: number): Promise<DecodedRecord[]> {
    const upTo = Math.min(this.commitOffset, fromOffset + maxEntries - 1);
    if (fromOffset > upTo) return [];
    if (fromOffset < this.firstOffset) throw new InternalError(`offset ${fromOffset} is below the first stored offset ${this.firstOffset}`);
    const seg = this.segmentFor(fromOffset);
    const last = Math.min(upTo, seg.lastOffset);
    const start = seg.positionOf(fromOffset);
    // Read whole records only, bounded by maxBytes (but always at least one record).
    let end = seg.endOf(fromOffset);
    let lastIncluded = fromOffset;
    while (lastIncluded < last) {
      const nextEnd = seg.endOf(lastIncluded + 1);
      if (nextEnd - start > maxBytes) break;
      end = nextEnd;
      lastIncluded++;
    }
    const bytes = await seg.file.read(start, end - start);
    const out: DecodedRecord[] = [];
    let pos = 0;
    for (let o = fromOffset; o <= lastIncluded; o++) {
      const res = decodeRecordAt(bytes, pos);
      if (!res.ok || res.record.offset !== o) {
        throw new DataLossError(`partition ${this.partition}: record at offset ${o} failed to decode on read (${res.ok ? "wrong offset" : res.reason})`);
      }
      out.push(res.record);
      pos += res.record.frameBytes;
    }
    return out;
  }

  /** Reads one committed record. */
  async readOne(offset: number): Promise<DecodedRecord> {
    if (offset < this.firstOffset || offset > this.commitOffset) {
      throw new InternalError(`offset ${offset} is outside the committed range ${this.firstOffset}..${this.commitOffset}`);
    }
    const [rec] = await this.read(offset, 1, Number.MAX_SAFE_INTEGER);
    if (!rec) throw new InternalError(`offset ${offset} could not be read`);
    return rec;
  }

  /** Stops accepting appends, waits for queued ones to become durable, closes files. */
  async close(): Promise<void> {
    this.closed = true;
    await this.drain();
    for (const s of this.segments) await s.file.close();
    this.segments.length = 0;
  }

  private segmentFor(offset: number): Segment {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.segments[mid] as Segment).baseOffset <= offset) lo = mid;
      else hi = mid - 1;
    }
    const seg = this.segments[lo];
    if (!seg) throw new InternalError(`no segment holds offset ${offset}`);
    return seg;
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = true;
    this.flushIdle = new Promise((r) => (this.resolveFlushIdle = r));
    void this.flushLoop().catch((e: unknown) => {
      this.endFlushing();
      this.fail(e instanceof Error ? e : new Error(String(e)));
    });
  }

  private endFlushing(): void {
    this.flushing = false;
    this.resolveFlushIdle?.();
  }

  /**
   * Group commit: while an fdatasync is in flight, appends accumulate in `pending`; the
   * next iteration writes them all with one writev and syncs once.
   */
  private async flushLoop(): Promise<void> {
    for (;;) {
      if (this.pending.length === 0 || this.failed) {
        // Synchronously with the last ack: an append made by an acked caller's
        // continuation must see flushing = false and start a new loop.
        this.endFlushing();
        return;
      }
      // Whole atomic batches only, so that one batch never spans two writes or segments.
      let bytes = 0;
      let n = 0;
      for (const p of this.pending) {
        if (n > 0 && bytes + p.bytes > this.opts.maxBatchBytes) break;
        bytes += p.bytes;
        n++;
      }
      const batches = this.pending.slice(0, n);
      this.pending = this.pending.slice(n);
      const frames = batches.flatMap((b) => b.frames);
      const firstOffset = (batches[0] as PendingBatch).lastOffset - (batches[0] as PendingBatch).frames.length + 1;
      let seg = this.segments[this.segments.length - 1] as Segment;
      if (seg.count > 0 && seg.size + bytes > this.opts.segmentBytes) {
        seg = await this.createSegment(firstOffset);
      }
      const at = seg.size;
      await seg.file.writev(frames, at);
      let pos = at;
      for (const f of frames) {
        seg.addPosition(pos);
        pos += f.length;
      }
      seg.size = pos;
      const t0 = process.hrtime.bigint();
      await seg.file.datasync();
      this.opts.observer?.fsyncSeconds?.(Number(process.hrtime.bigint() - t0) / 1e9);
      const last = batches[batches.length - 1] as PendingBatch;
      this.commitOffset = last.lastOffset;
      this.commitTs = last.lastTs;
      this.opts.observer?.batchCommitted?.(frames.length, bytes);
      this.releaseAcks();
      for (const fn of this.commitListeners) fn();
    }
  }

  private releaseAcks(): void {
    let i = 0;
    while (i < this.ackWaiters.length && (this.ackWaiters[i] as AckWaiter).offset <= this.commitOffset) {
      (this.ackWaiters[i] as AckWaiter).resolve();
      i++;
    }
    if (i > 0) this.ackWaiters = this.ackWaiters.slice(i);
  }

  private fail(err: Error): void {
    if (this.failed) return;
    const wrapped = new InternalError(`partition ${this.partition}: journal write failed, the process must stop: ${err.message}`, { cause: err });
    this.failed = wrapped;
    // Nothing in the failed batch (or after it) was durable: every waiter gets the error.
    for (const w of this.ackWaiters) w.reject(wrapped);
    this.ackWaiters = [];
    this.pending = [];
    this.opts.onFatal(wrapped);
  }

  /** Creates a segment durably: temp file, header, fdatasync, rename, directory fsync. */
  private async createSegment(baseOffset: number): Promise<Segment> {
    const { fs, dir } = this.opts;
    const name = segmentFileName(baseOffset);
    const tmp = join(dir, `${name}.tmp`);
    const path = join(dir, name);
    const file = await fs.create(tmp);
    const header = encodeSegmentHeader({ partition: this.opts.partition, baseOffset, incarnation: this.incarnation });
    await file.writev([header], 0);
    await file.datasync();
    await fs.rename(tmp, path);
    await fs.syncDir(dir);
    const seg = new Segment(baseOffset, path, file, SEGMENT_HEADER_BYTES);
    this.segments.push(seg);
    this.opts.observer?.segmentRolled?.(baseOffset);
    return seg;
  }
}
