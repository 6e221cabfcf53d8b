// The journal node: N partition replicas in one data directory, one HLC shared by them
// (so entries this node stamps are causally ordered across its partitions), and the
// audit index fed from every partition's committed entries.
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { join } from "node:path";
import { promises as fsp } from "node:fs";
import { HybridLogicalClock, type PhysicalClock } from "@vecraft/hlc";
import { DataLossError, FailedPreconditionError, NotFoundError, UnavailableError, type Logger } from "@vecraft/common";
import { AuditIndex } from "./audit/audit-index.js";
import { CorruptLogError, type LogObserver } from "./log/partition-log.js";
import { nodeFileSystem, type LogFileSystem } from "./log/file-system.js";
import { decodePayload, Partition, type CommittedEntry } from "./partition.js";
import type { DedupOptions } from "./dedup.js";

export interface JournalOptions {
  readonly dataDir: string;
  readonly nodeId: string;
  readonly partitions: number;
  readonly segmentBytes: number;
  readonly maxBatchBytes: number;
  readonly tickIntervalMs: number;
  readonly maxClockOffsetMs: number;
  readonly dedup: DedupOptions;
  readonly logger: Logger;
  /** Called when a write or fsync fails: the process must stop (fsync is never retried). */
  readonly onFatal: (err: Error) => void;
  readonly fs?: LogFileSystem;
  readonly clock?: PhysicalClock;
  readonly observer?: (partition: number) => LogObserver;
}

/** Entries the audit indexer reads per transaction. */
const AUDIT_BATCH_ENTRIES = 1000;
const AUDIT_BATCH_BYTES = 8 * 1024 * 1024;

interface JournalLayout {
  readonly version: 1;
  readonly partitions: number;
}

export class Journal {
  private readonly partitions = new Map<number, Partition>();
  private readonly broken = new Map<number, CorruptLogError>();
  private readonly indexed = new Map<number, number>();
  private readonly indexListeners = new Set<() => void>();
  private readonly stop = new AbortController();
  private indexers: Promise<void>[] = [];

  private constructor(
    readonly opts: JournalOptions,
    readonly hlc: HybridLogicalClock,
    readonly audit: AuditIndex,
  ) {}

  static async open(opts: JournalOptions): Promise<Journal> {
    const dir = join(opts.dataDir, "journal");
    await fsp.mkdir(dir, { recursive: true });
    await checkLayout(dir, opts.partitions);
    const hlc = new HybridLogicalClock({
      maxClockOffsetMs: opts.maxClockOffsetMs,
      ...(opts.clock ? { clock: opts.clock } : {}),
      onBackwardJump: (fromMs, toMs) => opts.logger.warn("physical clock jumped backwards; the HLC holds its value", { fromMs, toMs }),
    });
    const audit = AuditIndex.open(join(dir, "audit.sqlite"), (reason) =>
      opts.logger.warn("audit index unreadable; rebuilding it from the log", { reason }),
    );
    const j = new Journal(opts, hlc, audit);
    try {
      for (let p = 0; p < opts.partitions; p++) {
        try {
          const part = await Partition.open({
            partition: p,
            dir: join(dir, `partition-${String(p).padStart(4, "0")}`),
            fs: opts.fs ?? nodeFileSystem,
            hlc,
            logger: opts.logger.child({ partition: p }),
            segmentBytes: opts.segmentBytes,
            maxBatchBytes: opts.maxBatchBytes,
            tickIntervalMs: opts.tickIntervalMs,
            dedup: opts.dedup,
            onFatal: opts.onFatal,
            ...(opts.observer ? { observer: opts.observer(p) } : {}),
          });
          const r = part.recovery;
          opts.logger.info("partition recovered", {
            partition: p,
            epoch: part.epoch,
            segments: r.segments,
            entries: r.entries,
            commitOffset: part.commitOffset,
            truncatedBytes: r.truncatedBytes,
            ...(r.tornReason ? { tornTail: r.tornReason } : {}),
          });
          j.partitions.set(p, part);
        } catch (e) {
          if (!(e instanceof CorruptLogError)) throw e;
          // Never serve a log with a hole in it: the partition stays down, the others serve.
          opts.logger.error("partition refuses to serve: corrupt journal", { partition: p, err: e });
          j.broken.set(p, e);
        }
      }
    } catch (e) {
      await j.close();
      throw e;
    }
    for (const part of j.partitions.values()) j.indexers.push(j.runIndexer(part));
    return j;
  }

  get partitionCount(): number {
    return this.opts.partitions;
  }

  /** True when every partition serves (readiness). */
  get healthy(): boolean {
    return this.broken.size === 0 && [...this.partitions.values()].every((p) => !p.log.failure);
  }

  brokenReason(p: number): string | undefined {
    return this.broken.get(p)?.message;
  }

  /** The serving partition `p`, or a clear error. */
  partition(p: number): Partition {
    const part = this.partitions.get(p);
    if (part) return part;
    const broken = this.broken.get(p);
    if (broken) throw new DataLossError(broken.message);
    if (!Number.isInteger(p) || p < 0 || p >= this.opts.partitions) {
      throw new NotFoundError(`partition ${p} does not exist: this journal hosts partitions 0..${this.opts.partitions - 1}`);
    }
    throw new UnavailableError(`partition ${p} is not open`);
  }

  /** Serving partitions in id order. */
  servingPartitions(): Partition[] {
    return [...this.partitions.values()].sort((a, b) => a.partition - b.partition);
  }

  auditIndexedOffset(p: number): number {
    return this.indexed.get(p) ?? 0;
  }

  /**
   * Waits until the audit index covers every entry committed when the call was made, so
   * that history and lineage queries see the caller's acknowledged writes.
   */
  async waitForAudit(signal: AbortSignal, timeoutMs: number): Promise<void> {
    const targets = this.servingPartitions().map((p) => [p.partition, p.commitOffset] as const);
    const caughtUp = (): boolean => targets.every(([p, o]) => this.auditIndexedOffset(p) >= o);
    if (caughtUp()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => finish(new UnavailableError(`the audit index is still behind the log after ${timeoutMs} ms; retry`)), timeoutMs);
      const onAbort = (): void => finish(signal.reason instanceof Error ? signal.reason : new UnavailableError("request aborted"));
      const listener = (): void => {
        if (caughtUp()) finish();
      };
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.indexListeners.delete(listener);
        if (err) reject(err);
        else resolve();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.indexListeners.add(listener);
    });
  }

  async close(): Promise<void> {
    this.stop.abort();
    await Promise.allSettled(this.indexers);
    for (const p of this.partitions.values()) await p.close();
    this.audit.close();
  }

  /**
   * Feeds the audit index from one partition's committed entries, a bounded batch per
   * transaction, yielding to the event loop between batches.
   */
  private async runIndexer(part: Partition): Promise<void> {
    const p = part.partition;
    const signal = this.stop.signal;
    let next = this.audit.indexedOffset(p) + 1;
    if (next - 1 > part.commitOffset) {
      this.opts.logger.warn("audit index is ahead of the log (the log was replaced); reindexing the partition", {
        partition: p,
        indexed: next - 1,
        commitOffset: part.commitOffset,
      });
      this.audit.resetPartition(p);
      next = 1;
    }
    next = Math.max(next, part.log.firstOffset);
    this.setIndexed(p, next - 1);
    while (!signal.aborted) {
      try {
        if (next > part.commitOffset) {
          await part.waitForCommit(next, 1000, signal);
          continue;
        }
        const recs = await part.read(next, AUDIT_BATCH_ENTRIES, AUDIT_BATCH_BYTES);
        const entries: CommittedEntry[] = recs.map((record) => ({ partition: p, record, payload: decodePayload(record) }));
        this.audit.index(p, entries);
        next += recs.length;
        this.setIndexed(p, next - 1);
        await yieldToLoop();
      } catch (e) {
        if (signal.aborted) return;
        this.opts.logger.error("audit indexer failed; retrying in 1 s", { partition: p, err: e });
        await new Promise((r) => setTimeout(r, 1000).unref());
      }
    }
  }

  private setIndexed(p: number, offset: number): void {
    this.indexed.set(p, offset);
    for (const fn of this.indexListeners) fn();
  }
}

/** The partition count of a data directory is fixed when it is created. */
async function checkLayout(dir: string, partitions: number): Promise<void> {
  const path = join(dir, "journal.json");
  let existing: JournalLayout | undefined;
  try {
    existing = JSON.parse(await fsp.readFile(path, "utf8")) as JournalLayout;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  if (existing) {
    if (existing.partitions !== partitions) {
      throw new FailedPreconditionError(
        `the journal in ${dir} was created with ${existing.partitions} partitions but the configuration asks for ${partitions}; ` +
          `the partition count of a data directory cannot change`,
      );
    }
    return;
  }
  const layout: JournalLayout = { version: 1, partitions };
  const tmp = `${path}.tmp`;
  const fh = await fsp.open(tmp, "w");
  try {
    await fh.writeFile(JSON.stringify(layout) + "\n");
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, path);
  const d = await fsp.open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
