// The meta-manager's metrics, registered once on the process registry (created in
// main.ts). Labels are bounded: states, roles, operations and outcomes, never names or ids.
import { Counter, Gauge, type Registry } from "prom-client";
import { CollectionState, NodeRole, type Catalog as CatalogMessage } from "@vecraft/rpc";
import type { Catalog, CatalogObserver } from "./catalog.js";

export interface MetaMetrics {
  /** Hooks for the catalog. */
  readonly observer: CatalogObserver;
  /** Reads the catalog's latest snapshot into the gauges when /metrics is scraped. */
  bind(catalog: Catalog): void;
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
  return {
    observer: {
      casConflict: () => casConflicts.inc(),
      ddlAppend: (op, outcome) => ddlAppends.inc({ op, outcome }),
    },
    bind(c) {
      catalog = c;
    },
  };
}
