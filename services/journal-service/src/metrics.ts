// The journal's metrics, registered once on the process registry (created in main.ts).
// Labels are bounded: partition ids, never record or request ids.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { decode } from "@vecraft/hlc";
import type { LogObserver } from "./log/partition-log.js";
import type { Journal } from "./journal.js";

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

export interface JournalMetrics {
  /** Per-partition hooks for the log's group commit. */
  observer(partition: number): LogObserver;
  /** Time from an Append's arrival until its entries are durable. */
  appendSeconds: Histogram<"result">;
  appendedEntries: Counter<string>;
  dedupHits: Counter<string>;
  /** Reads the journal's state into the gauges when /metrics is scraped. */
  bind(journal: Journal): void;
}

export function createJournalMetrics(registry: Registry): JournalMetrics {
  const fsync = new Histogram({
    name: "vecraft_journal_fsync_duration_seconds",
    help: "fdatasync latency of a group commit.",
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const batchEntries = new Histogram({
    name: "vecraft_journal_group_commit_entries",
    help: "Entries made durable by one fdatasync (the group-commit ratio).",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096],
    registers: [registry],
  });
  const batchBytes = new Histogram({
    name: "vecraft_journal_group_commit_bytes",
    help: "Bytes written by one group commit.",
    buckets: [256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216],
    registers: [registry],
  });
  const segmentsRolled = new Counter({ name: "vecraft_journal_segments_rolled_total", help: "Segments created.", registers: [registry] });
  const appendSeconds = new Histogram({
    name: "vecraft_journal_append_duration_seconds",
    help: "Append RPC latency until the entries are durable (acknowledged).",
    labelNames: ["result"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const appendedEntries = new Counter({ name: "vecraft_journal_appended_entries_total", help: "DATA and DDL entries appended.", registers: [registry] });
  const dedupHits = new Counter({
    name: "vecraft_journal_dedup_hits_total",
    help: "Append retries answered from the producer table instead of appending again.",
    registers: [registry],
  });
  let journal: Journal | undefined;
  const partitions = (): ReturnType<Journal["servingPartitions"]> => journal?.servingPartitions() ?? [];
  new Gauge({
    name: "vecraft_journal_commit_offset",
    help: "Last durable (committed) offset per partition.",
    labelNames: ["partition"] as const,
    registers: [registry],
    collect() {
      for (const p of partitions()) this.set({ partition: String(p.partition) }, p.commitOffset);
    },
  });
  new Gauge({
    name: "vecraft_journal_closed_ts_lag_seconds",
    help: "Wall time minus the closed timestamp (ts of the last committed entry) per partition; ticks keep it near the tick interval.",
    labelNames: ["partition"] as const,
    registers: [registry],
    collect() {
      const now = Date.now();
      for (const p of partitions()) this.set({ partition: String(p.partition) }, Math.max(0, now - decode(p.closedTs).wallMs) / 1000);
    },
  });
  new Gauge({
    name: "vecraft_journal_audit_lag_entries",
    help: "Committed entries not yet in the audit index, per partition.",
    labelNames: ["partition"] as const,
    registers: [registry],
    collect() {
      for (const p of partitions()) this.set({ partition: String(p.partition) }, Math.max(0, p.commitOffset - (journal?.auditIndexedOffset(p.partition) ?? 0)));
    },
  });
  new Gauge({
    name: "vecraft_journal_producers",
    help: "Idempotent producers remembered per partition (bounded by dedup.maxProducers).",
    labelNames: ["partition"] as const,
    registers: [registry],
    collect() {
      for (const p of partitions()) this.set({ partition: String(p.partition) }, p.producerCount);
    },
  });
  new Gauge({
    name: "vecraft_journal_segments",
    help: "Segment files per partition.",
    labelNames: ["partition"] as const,
    registers: [registry],
    collect() {
      for (const p of partitions()) this.set({ partition: String(p.partition) }, p.log.segmentCount);
    },
  });
  return {
    observer: () => ({
      fsyncSeconds: (s) => fsync.observe(s),
      batchCommitted: (entries, bytes) => {
        batchEntries.observe(entries);
        batchBytes.observe(bytes);
      },
      segmentRolled: () => segmentsRolled.inc(),
    }),
    appendSeconds,
    appendedEntries,
    dedupHits,
    bind(j) {
      journal = j;
    },
  };
}
