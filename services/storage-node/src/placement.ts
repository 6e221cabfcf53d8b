// Follows the catalog's shard placements on a cluster storage node (hostAll = false).
// On every catalog change: a READY collection's shard placed here but not hosted is
// bootstrapped (up to two at a time, each retried with backoff); a local replica whose
// collection incarnation (uid) is still in the catalog but whose placement no longer
// lists this node is removed (also right after the partition follower created replicas
// from a CREATE entry the catalog has since placed elsewhere). A collection absent from
// the catalog is left to the journal's DROP, and nothing is removed before the first
// catalog arrived. The node asks it which incarnation of a name the catalog places when
// two meet on one shard.
import type { Client } from "@connectrpc/connect";
import { ClientPool } from "@vecraft/meta-client";
import { backoffDelays, type Logger } from "@vecraft/common";
import { StorageService, type Catalog, type CatalogCollection } from "@vecraft/rpc";
import type { BootstrapTask, StorageNode } from "./node.js";

/** The part of @vecraft/meta-client's CatalogFollower this needs (tests feed one by hand). */
export interface CatalogView {
  readonly current: Catalog | undefined;
  onChange(fn: () => void): () => void;
  nodeAddress(id: string): string | undefined;
}

export interface PlacementOptions {
  readonly logger: Logger;
  /** A StorageService client for a peer's address (default: gRPC over HTTP/2). */
  readonly peerClient?: (address: string) => Client<typeof StorageService>;
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  /**
   * How long a placement must have been seen before it is bootstrapped (default 2 s): a
   * collection just created is READY as soon as its CREATE entries are journaled, and
   * the partition follower creates the replica from the entry (far cheaper) moments later.
   */
  readonly settleMs?: number;
  /** Bootstraps run at once (default 2). */
  readonly maxBootstraps?: number;
}

/** HTTP/2 pings on peer connections: a dead peer fails a snapshot stream in seconds, not at the OS's TCP timeout. */
const PEER_PING_INTERVAL_MS = 10_000;
const PEER_PING_TIMEOUT_MS = 5_000;

interface Failure {
  readonly delays: Iterator<number, void>;
  notBefore: number;
}

export class PlacementFollower {
  private readonly stopper = new AbortController();
  private readonly failures = new Map<string, Failure>();
  private readonly clients: ClientPool<typeof StorageService>;
  /** Shards already warned about (placed here in a partition this node does not follow). */
  private readonly unfollowed = new Set<string>();
  /** When each wanted bootstrap was first seen (see settleMs). */
  private readonly firstSeen = new Map<string, number>();
  /** Bootstraps under way (keys as in firstSeen). */
  private readonly inFlight = new Set<string>();
  private wake: (() => void) | undefined;
  private unsubscribe: (() => void) | undefined;
  private unsubscribeCreated: (() => void) | undefined;
  private worker: Promise<void> | undefined;

  constructor(
    private readonly node: StorageNode,
    private readonly catalog: CatalogView,
    private readonly opts: PlacementOptions,
  ) {
    this.clients = new ClientPool(StorageService, {
      transport: { pingIntervalMs: PEER_PING_INTERVAL_MS, pingTimeoutMs: PEER_PING_TIMEOUT_MS },
      ...(opts.peerClient ? { make: opts.peerClient } : {}),
    });
  }

  start(): void {
    this.unsubscribe = this.catalog.onChange(() => this.reconcile());
    this.unsubscribeCreated = this.node.onReplicasCreated(() => this.reconcile());
    this.node.setPlacedUid((name) => {
      const catalog = this.catalog.current;
      if (!catalog) return undefined;
      return [...catalog.collections, ...catalog.pendingCollections].find((c) => c.collection?.name === name)?.uid;
    });
    this.reconcile();
    this.worker = this.work();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribeCreated?.();
    this.node.setPlacedUid(() => undefined);
    this.stopper.abort();
    this.node.cancelBootstraps("the node is shutting down");
    this.wake?.();
    await this.worker;
  }

  /** Removes replicas placed elsewhere now, cancels their bootstraps, and wakes the worker. */
  reconcile(): void {
    const catalog = this.catalog.current;
    if (!catalog || this.stopper.signal.aborted) return;
    const byUid = new Map<string, CatalogCollection>();
    for (const c of [...catalog.collections, ...catalog.pendingCollections]) byUid.set(c.uid, c);
    const self = this.node.nodeId;
    for (const r of this.node.replicas()) {
      const c = r.uid ? byUid.get(r.uid) : undefined;
      const placement = c?.shards.find((p) => p.shard === r.shard);
      if (!placement || placement.replicas.includes(self)) continue;
      const why = `the catalog (revision ${catalog.revision}) places shard ${r.shard} of ${r.collection} on ${placement.replicas.join(", ") || "no node"}, not here`;
      if (r.state === "serving") this.node.removeReplica(r.collection, r.shard, why);
      else this.node.cancelBootstrap(r.collection, r.shard, why);
    }
    this.prune(catalog);
    this.wake?.();
  }

  /** Forgets what concerns placements, collections and nodes the catalog no longer has. */
  private prune(catalog: Catalog): void {
    const self = this.node.nodeId;
    const wanted = new Set<string>();
    const unfollowed = new Set<string>();
    for (const c of catalog.collections) {
      for (const p of c.shards) {
        if (!p.replicas.includes(self)) continue;
        wanted.add(`${c.collection?.name ?? ""}/${p.shard}/${c.uid}`);
        unfollowed.add(`${c.uid}/${p.shard}`);
      }
    }
    for (const map of [this.firstSeen, this.failures]) for (const k of map.keys()) if (!wanted.has(k)) map.delete(k);
    for (const k of this.unfollowed) if (!unfollowed.has(k)) this.unfollowed.delete(k);
    // connect-node's transports have no close: dropping the client lets its idle HTTP/2
    // session time out and go.
    const addresses = new Set(catalog.nodes.map((n) => n.address));
    this.clients.retain(addresses);
  }

  /** How many entries the follower tracks (tests: pruning). */
  tracked(): { firstSeen: number; failures: number; unfollowed: number; clients: number } {
    return { firstSeen: this.firstSeen.size, failures: this.failures.size, unfollowed: this.unfollowed.size, clients: this.clients.size };
  }

  /** The next bootstrap due, or how long until one is. */
  private next(): { task?: BootstrapTask; waitMs: number } {
    const catalog = this.catalog.current;
    let waitMs = Number.POSITIVE_INFINITY;
    if (!catalog) return { waitMs };
    const self = this.node.nodeId;
    const alive = new Set(catalog.nodes.filter((n) => n.alive).map((n) => n.id));
    const now = Date.now();
    for (const c of catalog.collections) {
      const name = c.collection?.name ?? "";
      for (const p of c.shards) {
        if (!p.replicas.includes(self) || this.node.hasReplica(name, p.shard)) continue;
        if (!this.node.follows(p.partition)) {
          if (this.unfollowed.has(`${c.uid}/${p.shard}`)) continue;
          this.unfollowed.add(`${c.uid}/${p.shard}`);
          this.opts.logger.warn("shard placed on this node is in a partition it does not follow", { collection: name, shard: p.shard, partition: p.partition });
          continue;
        }
        const key = `${name}/${p.shard}/${c.uid}`;
        if (this.inFlight.has(key)) continue;
        const seen = this.firstSeen.get(key) ?? now;
        this.firstSeen.set(key, seen);
        const notBefore = Math.max(seen + (this.opts.settleMs ?? 2000), this.failures.get(key)?.notBefore ?? 0);
        if (notBefore > now) {
          waitMs = Math.min(waitMs, notBefore - now);
          continue;
        }
        const peers = p.replicas.flatMap((id) => {
          const address = id !== self && alive.has(id) ? this.catalog.nodeAddress(id) : undefined;
          return address ? [{ nodeId: id, client: this.clients.get(address) }] : [];
        });
        return { task: { collection: name, shard: p.shard, partition: p.partition, uid: c.uid, peers }, waitMs: 0 };
      }
    }
    return { waitMs };
  }

  private async work(): Promise<void> {
    const signal = this.stopper.signal;
    const max = Math.max(1, this.opts.maxBootstraps ?? 2);
    const running = new Set<Promise<void>>();
    while (!signal.aborted) {
      const { task, waitMs } = running.size < max ? this.next() : { task: undefined, waitMs: Number.POSITIVE_INFINITY };
      if (!task) {
        // Woken by a catalog change, a finished bootstrap, or the next one falling due.
        await new Promise<void>((resolve) => {
          const timer = Number.isFinite(waitMs) ? setTimeout(done, waitMs) : undefined;
          function done(): void {
            clearTimeout(timer);
            resolve();
          }
          this.wake = done;
        });
        this.wake = undefined;
        continue;
      }
      const key = `${task.collection}/${task.shard}/${task.uid}`;
      this.inFlight.add(key);
      const run: Promise<void> = this.run(task).finally(() => {
        this.inFlight.delete(key);
        running.delete(run);
        this.wake?.();
      });
      running.add(run);
    }
    await Promise.allSettled(running);
  }

  private async run(task: BootstrapTask): Promise<void> {
    const key = `${task.collection}/${task.shard}/${task.uid}`;
    try {
      await this.node.bootstrap(task);
      this.failures.delete(key);
      this.firstSeen.delete(key);
    } catch (e) {
      if (this.stopper.signal.aborted) return;
      let f = this.failures.get(key);
      if (!f) {
        f = { delays: backoffDelays({ initialMs: this.opts.retryInitialMs ?? 500, maxMs: this.opts.retryMaxMs ?? 30_000, multiplier: 2, jitter: 0.2 }), notBefore: 0 };
        this.failures.set(key, f);
      }
      const wait: number = f.delays.next().value ?? this.opts.retryMaxMs ?? 30_000;
      f.notBefore = Date.now() + wait;
      this.opts.logger.warn("shard bootstrap failed; will retry", { collection: task.collection, shard: task.shard, uid: task.uid, err: e, retryInMs: wait });
    }
  }
}
