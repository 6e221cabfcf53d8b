// The meta-manager's metrics, registered once on the process registry (created in
// main.ts). Labels are bounded: states, roles, operations and outcomes, never names or ids.
import { Counter, Gauge, type Registry } from "prom-client";
import { CollectionState, NodeRole, type Catalog as CatalogMessage } from "@vecraft/rpc";
import type { Catalog, CatalogObserver } from "./catalog.js";
import type { FailoverController, FailoverObserver } from "./failover.js";
import type { PartitionMapObserver } from "./partition-map.js";
import type { StoreHealth } from "./store/tracked-store.js";

export interface MetaMetrics {
  /** Hooks for the catalog. */
  readonly observer: CatalogObserver;
  /** Hooks for the failover controller. */
  readonly failoverObserver: FailoverObserver;
  /** Hooks for the journal partition map controller. */
  readonly partitionMapObserver: PartitionMapObserver;
  /** Reads the catalog's latest snapshot (and the store's reachability, the failover state) into the gauges when /metrics is scraped. */
  bind(catalog: Catalog, extra?: { health?: () => StoreHealth; failover?: FailoverController }): void;
}

const ROLE_LABELS: readonly [NodeRole, string][] = [
  [NodeRole.GATEWAY, "gateway"],
  [NodeRole.QUERY_PROCESSOR, "query_processor"],
  [NodeRole.STORAGE, "storage"],
  [NodeRole.JOURNAL, "journal"],
  [NodeRole.META, "meta"],
];

export function createMetaMetrics(registry: Registry): MetaMetrics {
  let catalog: Catalog | undefined;
  let health: (() => StoreHealth) | undefined;
  let failover: FailoverController | undefined;
  const latest = (): CatalogMessage | undefined => catalog?.latest;
  new Gauge({
    name: "vecraft_meta_catalog_revision",
    help: "Revision of the latest catalog snapshot (the store revision it was read at).",
    registers: [registry],
    collect() {
      const c = latest();
      if (c !== undefined) this.set(Number(c.revision));
    },
  });
  new Gauge({
    name: "vecraft_meta_collections",
    help: "Collections in the catalog, by state (creating and dropping ones are waiting for DDL entries).",
    labelNames: ["state"] as const,
    registers: [registry],
    collect() {
      const c = latest();
      if (c === undefined) return;
      const pending = { creating: 0, dropping: 0 };
      for (const p of c.pendingCollections) {
        if (p.state === CollectionState.CREATING) pending.creating++;
        else pending.dropping++;
      }
      this.set({ state: "ready" }, c.collections.length);
      this.set({ state: "creating" }, pending.creating);
      this.set({ state: "dropping" }, pending.dropping);
    },
  });
  new Gauge({
    name: "vecraft_meta_nodes_alive",
    help: "Registered nodes whose lease is alive, by role.",
    labelNames: ["role"] as const,
    registers: [registry],
    collect() {
      const c = latest();
      if (c === undefined) return;
      for (const [role, label] of ROLE_LABELS) {
        this.set({ role: label }, c.nodes.filter((n) => n.alive && n.roles.includes(role)).length);
      }
    },
  });
  new Gauge({
    name: "vecraft_meta_nodes_registered",
    help: "Registered nodes, alive or not.",
    registers: [registry],
    collect() {
      const c = latest();
      if (c !== undefined) this.set(c.nodes.length);
    },
  });
  new Gauge({
    name: "vecraft_meta_watch_streams",
    help: "Open WatchCatalog streams (bounded by max-watch-streams).",
    registers: [registry],
    collect() {
      this.set(catalog?.watchStreams ?? 0);
    },
  });
  const casConflicts = new Counter({
    name: "vecraft_meta_cas_conflicts_total",
    help: "Catalog transactions that lost their compare-and-swap and were retried.",
    registers: [registry],
  });
  const ddlAppends = new Counter({
    name: "vecraft_meta_ddl_appends_total",
    help: "DDL entries journaled, per partition, by operation and outcome (deduplicated = a re-append the journal already had).",
    labelNames: ["op", "outcome"] as const,
    registers: [registry],
  });
  new Gauge({
    name: "vecraft_meta_store_reachable",
    help: "1 while the metadata store answers, 0 after a call found it unreachable (GetCatalog then serves the cached catalog).",
    registers: [registry],
    collect() {
      this.set(health === undefined || health().reachable ? 1 : 0);
    },
  });
  const storeOutages = new Gauge({
    name: "vecraft_meta_store_outages",
    help: "Times the metadata store became unreachable since the process started.",
    registers: [registry],
    collect() {
      storeOutages.set(health?.().outages ?? 0);
    },
  });
  const failoverMoves = new Counter({
    name: "vecraft_meta_failover_moves_total",
    help: "Shard replicas the failover controller assigned: replace = moved off a dead storage node, top_up = added to a shard short of its replication factor.",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  const failoverDeferrals = new Counter({
    name: "vecraft_meta_failover_deferrals_total",
    help: "Shards whose repair (replacing a dead replica, topping up) started waiting, by reason: no_serving_replica = none of their alive replicas reports SERVING yet, status_unavailable = their nodes did not answer GetStorageStatus.",
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  new Gauge({
    name: "vecraft_meta_failover_deferred_shards",
    help: "Shards whose repair waits for a replica confirmed SERVING at the last failover pass, by reason (see vecraft_meta_failover_deferrals_total).",
    labelNames: ["reason"] as const,
    registers: [registry],
    collect() {
      const last = failover?.lastPass;
      if (last === undefined) return;
      for (const reason of ["no_serving_replica", "status_unavailable"] as const) this.set({ reason }, last.deferred.filter((d) => d.reason === reason).length);
    },
  });
  const failoverPasses = new Counter({
    name: "vecraft_meta_failover_passes_total",
    help: "Failover controller passes by outcome (skipped = the store was unreachable, nothing was decided).",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  new Gauge({
    name: "vecraft_meta_failover_dead_nodes",
    help: "Dead storage nodes at the last failover pass: replaceable (grace over) or waiting (within the grace or the recovery grace).",
    labelNames: ["phase"] as const,
    registers: [registry],
    collect() {
      const last = failover?.lastPass;
      if (last === undefined) return;
      this.set({ phase: "replaceable" }, last.deadNodes.length);
      this.set({ phase: "waiting" }, last.waitingNodes.length);
    },
  });
  new Gauge({
    name: "vecraft_meta_failover_unplaced_replicas",
    help: "Replicas the last failover pass could not place (no candidate node, or no live replica to copy from).",
    registers: [registry],
    collect() {
      const last = failover?.lastPass;
      if (last !== undefined) this.set(last.unplaced + last.withoutLiveReplica.length);
    },
  });
  const partitionMapChanges = new Counter({
    name: "vecraft_meta_partition_map_changes_total",
    help: "Journal partition records written by the partition map: new (first record), leader, epoch (e.g. a journal restart), other (replicas or address).",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  const partitionMapPasses = new Counter({
    name: "vecraft_meta_partition_map_passes_total",
    help: "Journal partition map passes by outcome (skipped = the store was unreachable, nothing was written).",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  return {
    partitionMapObserver: {
      change: (kind) => partitionMapChanges.inc({ kind }),
      pass: (outcome) => partitionMapPasses.inc({ outcome }),
      casConflict: () => casConflicts.inc(),
    },
    failoverObserver: {
      move: (m) => failoverMoves.inc({ kind: m.from === undefined ? "top_up" : "replace" }),
      deferred: (reason) => failoverDeferrals.inc({ reason }),
      pass: (outcome) => failoverPasses.inc({ outcome }),
      casConflict: () => casConflicts.inc(),
    },
    observer: {
      casConflict: () => casConflicts.inc(),
      ddlAppend: (op, outcome) => ddlAppends.inc({ op, outcome }),
    },
    bind(c, extra) {
      catalog = c;
      health = extra?.health;
      failover = extra?.failover;
    },
  };
}
