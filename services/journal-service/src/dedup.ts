// Idempotent producers (JOURNAL-PROTOCOL.md §2.9). A producer stamps each entry with
// (producerId, producerEpoch, seq); a retried batch with the same sequence range gets
// the original offsets and timestamps back instead of being appended again.
//
// Unlike Kafka, which requires seq == lastSeq + 1, batches may arrive out of order:
// one gateway multiplexes many concurrent requests over HTTP/2 and nothing orders their
// arrival. So the table keeps, per producer, a window of the most recent batches (runs of
// consecutive seqs) and the highest seq it has forgotten. A batch is
//   - a retry if a remembered run covers its whole range: answer from the run;
//   - a conflict if it overlaps a remembered run only partly: a client bug;
//   - too old if its first seq is at or below the forgotten high-water mark: the table
//     cannot tell whether it was applied, so it refuses (a definite error, never a guess);
//   - new otherwise.
// The table is derived from the log: recovery replays every record into it.
import { FailedPreconditionError, InvalidArgumentError, AbortedError } from "@vecraft/common";

export interface DedupOptions {
  /** Batches remembered per producer; must exceed the producer's in-flight requests. */
  readonly windowBatches: number;
  /** Entries remembered per producer (bounds memory when batches are large). */
  readonly windowEntries: number;
  /** Producers remembered per partition; the least recently used is forgotten first. */
  readonly maxProducers: number;
}

/** Longest run kept as one piece, so that the window can drop old entries in steps. */
export const MAX_RUN_ENTRIES = 4096;

export interface Run {
  readonly firstSeq: number;
  readonly firstOffset: number;
  /** Per entry of the run, in seq order. */
  readonly ts: bigint[];
  /** Resolves when the run is durable; retries wait for it before answering. */
  durable: Promise<void>;
}

interface ProducerState {
  epoch: number;
  runs: Run[];
  /** Entries across runs. */
  entries: number;
  /** The highest seq of any run dropped from the window (-1 if none). */
  forgottenMaxSeq: number;
  /** The highest seq ever recorded for this epoch: a batch above it is new without a scan. */
  maxSeq: number;
}

export type DedupVerdict = { kind: "new" } | { kind: "retry"; offsets: number[]; ts: bigint[]; durable: Promise<void> };

export class ProducerTable {
  private readonly producers = new Map<bigint, ProducerState>();

  constructor(private readonly opts: DedupOptions) {}

  get size(): number {
    return this.producers.size;
  }

  /**
   * Classifies a batch of `count` entries starting at `firstSeq`. Throws for fenced
   * epochs, partial overlaps and batches too old to classify.
   */
  check(producerId: bigint, producerEpoch: number, firstSeq: number, count: number): DedupVerdict {
    const st = this.producers.get(producerId);
    if (!st || producerEpoch > st.epoch) return { kind: "new" };
    if (producerEpoch < st.epoch) {
      throw new AbortedError(`producer ${producerId} epoch ${producerEpoch} is fenced: epoch ${st.epoch} has written since`);
    }
    // The common case, a producer sending its next batch: nothing to scan.
    if (firstSeq > st.maxSeq) return { kind: "new" };
    const lastSeq = firstSeq + count - 1;
    for (let i = st.runs.length - 1; i >= 0; i--) {
      const run = st.runs[i] as Run;
      const runLast = run.firstSeq + run.ts.length - 1;
      if (lastSeq < run.firstSeq || firstSeq > runLast) continue;
      if (firstSeq >= run.firstSeq && lastSeq <= runLast) {
        const from = firstSeq - run.firstSeq;
        const offsets: number[] = [];
        for (let k = 0; k < count; k++) offsets.push(run.firstOffset + from + k);
        return { kind: "retry", offsets, ts: run.ts.slice(from, from + count), durable: run.durable };
      }
      throw new InvalidArgumentError(
        `producer ${producerId}: seqs ${firstSeq}..${lastSeq} overlap an earlier batch ${run.firstSeq}..${runLast} without matching it; a retry must resend the same batch`,
      );
    }
    if (firstSeq <= st.forgottenMaxSeq) {
      throw new FailedPreconditionError(
        `producer ${producerId}: seq ${firstSeq} is older than the deduplication window (up to seq ${st.forgottenMaxSeq} forgotten); ` +
          `the journal cannot tell whether this batch was applied`,
      );
    }
    return { kind: "new" };
  }

  /**
   * Records an accepted batch, or during recovery one recovered record at a time;
   * consecutive seqs at consecutive offsets extend the last run (up to MAX_RUN_ENTRIES).
   */
  record(producerId: bigint, producerEpoch: number, firstSeq: number, firstOffset: number, ts: bigint[], durable: Promise<void>): void {
    let st = this.producers.get(producerId);
    if (!st || producerEpoch > st.epoch) st = { epoch: producerEpoch, runs: [], entries: 0, forgottenMaxSeq: -1, maxSeq: -1 };
    st.maxSeq = Math.max(st.maxSeq, firstSeq + ts.length - 1);
    const last = st.runs[st.runs.length - 1];
    if (
      last &&
      last.firstSeq + last.ts.length === firstSeq &&
      last.firstOffset + last.ts.length === firstOffset &&
      last.ts.length + ts.length <= MAX_RUN_ENTRIES
    ) {
      last.ts.push(...ts);
      // Offsets become durable in order, so the later promise covers the whole run.
      last.durable = durable;
    } else {
      st.runs.push({ firstSeq, firstOffset, ts: [...ts], durable });
    }
    st.entries += ts.length;
    while (st.runs.length > 1 && (st.runs.length > this.opts.windowBatches || st.entries > this.opts.windowEntries)) {
      const dropped = st.runs.shift() as Run;
      st.entries -= dropped.ts.length;
      st.forgottenMaxSeq = Math.max(st.forgottenMaxSeq, dropped.firstSeq + dropped.ts.length - 1);
    }
    this.touch(producerId, st);
  }

  private touch(producerId: bigint, st: ProducerState): void {
    // Map iteration order is insertion order: re-inserting makes this the most recent.
    this.producers.delete(producerId);
    this.producers.set(producerId, st);
    if (this.producers.size > this.opts.maxProducers) {
      const oldest = this.producers.keys().next();
      if (!oldest.done) this.producers.delete(oldest.value);
    }
  }
}
