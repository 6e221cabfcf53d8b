// Storage node metrics, registered once on the process registry.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { decode } from "@vecraft/hlc";
import type { NodeStats, ReplicaStateName, StorageNode } from "./node.js";

export interface StorageMetrics {
  readonly searchSeconds: Histogram<"filtered">;
  /** What the node reports about bootstraps and catch-ups. */
  readonly stats: NodeStats;
  bind(node: StorageNode): void;
}

export function createStorageMetrics(registry: Registry): StorageMetrics {
  let node: StorageNode | undefined;
  const searchSeconds = new Histogram({
    name: "vecraft_storage_search_duration_seconds",
    help: "Shard search time (after the read target was reached).",
    labelNames: ["filtered"] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  new Gauge({
    name: "vecraft_storage_applied_offset",
    help: "Last journal offset applied per followed partition.",
    labelNames: ["partition"] as const,
    registers: [registry],
    collect() {
      for (const { partition, position } of node?.partitionPositions() ?? []) this.set({ partition: String(partition) }, position.offset);
    },
  });
  new Gauge({
    name: "vecraft_storage_apply_lag_seconds",
    help: "Wall time minus the ts of the last applied entry per partition (ticks keep it near the tick interval when caught up).",
    labelNames: ["partition"] as const,
    registers: [registry],
    collect() {
      const now = Date.now();
      for (const { partition, position } of node?.partitionPositions() ?? []) {
        this.set({ partition: String(partition) }, position.ts === 0n ? 0 : Math.max(0, now - decode(position.ts).wallMs) / 1000);
      }
    },
  });
  new Gauge({
    name: "vecraft_storage_shard_records",
    help: "Live records per hosted shard replica, summed per node.",
    registers: [registry],
    collect() {
      this.set((node?.hostedShards() ?? []).reduce((n, s) => n + s.store.liveRecords, 0));
    },
  });
  new Gauge({
    name: "vecraft_storage_index_restore_rows",
    help: "Rows replayed into shard indexes being restored (from a checkpoint or rebuilt from SQLite); 0 when none is.",
    registers: [registry],
    collect() {
      this.set((node?.restoreProgress() ?? []).reduce((n, r) => n + r.rows, 0));
    },
  });
  new Gauge({
    name: "vecraft_storage_replicas",
    help: "Local shard replicas by state (serving, bootstrapping, catching_up).",
    labelNames: ["state"] as const,
    registers: [registry],
    collect() {
      const counts: Record<ReplicaStateName, number> = { serving: 0, bootstrapping: 0, catching_up: 0 };
      for (const r of node?.replicas() ?? []) counts[r.state]++;
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    },
  });
  const bootstrapBytes = new Counter({
    name: "vecraft_storage_bootstrap_bytes_received_total",
    help: "Shard snapshot bytes received from peers.",
    registers: [registry],
  });
  const bootstraps = new Counter({
    name: "vecraft_storage_bootstraps_total",
    help: "Shard replica bootstrap attempts by source (snapshot from a peer, or rebuild from the journal) and outcome, counted once per attempt.",
    labelNames: ["source", "outcome"] as const,
    registers: [registry],
  });
  const peerFailures = new Counter({
    name: "vecraft_storage_snapshot_peer_failures_total",
    help: "Snapshots from one peer that failed during a bootstrap (the bootstrap may still succeed with another peer).",
    registers: [registry],
  });
  const catchUp = new Counter({
    name: "vecraft_storage_catchup_entries_total",
    help: "Journal entries applied to bootstrapping replicas while catching up (or rebuilding).",
    registers: [registry],
  });
  return {
    searchSeconds,
    stats: {
      bootstrapBytes: (n) => bootstrapBytes.inc(n),
      bootstrapFinished: (source, outcome) => bootstraps.inc({ source, outcome }),
      snapshotPeerFailed: () => peerFailures.inc(),
      catchUpEntries: (n) => catchUp.inc(n),
    },
    bind(n) {
      node = n;
    },
  };
}
