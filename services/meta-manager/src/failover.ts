// The failover controller: keeps every shard of every READY or CREATING collection on
// `replication_factor` alive storage nodes.
//
// A replica is replaced when its node is dead: registered (`nodes/<id>` exists) but its
// lease is gone (`alive/<id>` absent), as read in one consistent range of the store. A
// read that fails decides nothing: a node is never treated as dead because the
// meta-manager cannot read the store. The replacement is the least loaded alive storage
// node that is not already a replica of the shard (placement.ts `planRepairs`, the same
// rule as placement). Shards shorter than the replication factor are topped up the same
// way. Storage nodes follow the catalog: a node newly listed bootstraps from a live peer's
// snapshot, a node no longer listed deletes its copy. So only dead replicas are ever
// removed (never the last live one), and a shard with no live replica is left alone.
//
// A shard is repaired only while another of its listed replicas is SERVING, as its node
// says (StorageService.GetStorageStatus; one call per alive storage node per pass, only to
// nodes hosting a shard that needs work, with a short deadline), for the collection's
// current incarnation (catalog uid) when the node reports one. A replica still
// bootstrapping has no data: had it been counted as a source, a second failure before it
// serves would leave only empty replicas listed, and the dead node, back and unlisted,
// would delete the only copy. A shard whose alive replicas are not confirmed serving (or
// whose nodes do not answer) is deferred: logged once, counted by reason, retried every pass.
//
// When a dead node counts (timing):
// - `graceMs` after the controller first saw it dead, so a node that re-registers right
//   away (a restart, a pause just past its TTL) keeps its shards.
// - Not before the recovery grace after the controller started or after the store last
//   came back from an outage: the node's own lease TTL (recorded at registration), at
//   least `recoveryGraceMs` (the default TTL). Nodes renew leases through the
//   meta-manager, so while the meta-manager or its store was unreachable their heartbeats
//   failed; a lease that expired then says nothing about the node, which gets a full TTL
//   of its own to renew or re-register. (etcd itself restores leases with a fresh TTL when
//   it restarts.)
//
// Each collection's changes are one transaction that compares the collection record, the
// catalog version key (rewritten, as every catalog change does: catalog.ts), the removed
// nodes' alive keys (still absent) and the added nodes' alive keys (unchanged), so a move
// is made against exactly the liveness it was planned on. A lost compare re-reads.
//
// Passes run when the catalog feed sees a change (a lease expiring deletes an alive key; a
// node registering adds one), when a dead node's grace ends, and every `intervalMs` as a
// safety net. Passes never overlap; triggers during a pass coalesce into one more pass.
import type { Client } from "@connectrpc/connect";
import { UnavailableError, abortReason, abortableSleep, backoffDelays, type Logger } from "@vecraft/common";
import { NodeRole, ReplicaState, StorageService, type GetStorageStatusResponse } from "@vecraft/rpc";
import type { Catalog } from "./catalog.js";
import { NodeClients } from "./node-clients.js";
import { needsRepair, planRepairs, replicaKey, type ReplicaMove } from "./placement.js";
import { commitCatalogChange, encodeCollection, readCatalogSnapshot, storageLoad, type CatalogKeys, type CatalogSnapshot, type CollectionRecord, type NodeRecord } from "./records.js";
import { SerialPasses } from "./serial-passes.js";
import type { Clock } from "./store/clock.js";
import type { MetaStore, TxnCompare } from "./store/meta-store.js";
import type { StoreHealth } from "./store/tracked-store.js";

/**
 * Why a shard's repair waits: none of its alive replicas reports SERVING
 * (`no_serving_replica`: they are bootstrapping or catching up, or do not hold it), or
 * some of them could not be asked (`status_unavailable`).
 */
export type DeferReason = "no_serving_replica" | "status_unavailable";

export interface FailoverObserver {
  /** One replica moved (`from` undefined: a shard topped up). */
  move?(move: ReplicaMove & { readonly collection: string }): void;
  /** A shard's repair started waiting for a serving replica (once per episode and reason). */
  deferred?(reason: DeferReason): void;
  pass?(outcome: "ok" | "failed" | "skipped"): void;
  casConflict?(): void;
}

export interface FailoverOptions {
  readonly store: MetaStore;
  readonly keys: CatalogKeys;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Pause between safety-net passes. */
  readonly intervalMs: number;
  /** How long a node must have been seen dead before its replicas move. */
  readonly graceMs: number;
  /**
   * No node counts as dead until this long after start and after a store outage ends (a
   * node registered with a longer lease TTL gets its TTL).
   */
  readonly recoveryGraceMs: number;
  /** The client of the storage node at `address` (GetStorageStatus); default: gRPC, one per address. */
  readonly storageClient?: (address: string) => Client<typeof StorageService>;
  /** Deadline of one GetStorageStatus call (default 2 s). */
  readonly statusTimeoutMs?: number;
  /** The store's reachability, as tracked by TrackedMetaStore; absent: never unreachable. */
  readonly health?: () => StoreHealth;
  readonly observer?: FailoverObserver;
  /** Re-reads after a lost compare within one pass (default 8). */
  readonly casMaxAttempts?: number;
}

export interface FailoverPassResult {
  readonly moves: readonly (ReplicaMove & { readonly collection: string })[];
  /** Dead nodes whose replicas may move now. */
  readonly deadNodes: readonly string[];
  /** Dead nodes still within their grace (or the recovery grace). */
  readonly waitingNodes: readonly string[];
  /** Replicas that should move or be added but have no candidate node. */
  readonly unplaced: number;
  /** "collection/shard" of shards none of whose replicas is alive (left alone). */
  readonly withoutLiveReplica: readonly string[];
  /** Shards that need work but wait for one of their replicas to be confirmed serving. */
  readonly deferred: readonly { readonly shard: string; readonly reason: DeferReason }[];
}

/** What one pass learned from the storage nodes: per node id, its status or why there is none. */
type StatusCache = Map<string, Promise<GetStorageStatusResponse | Error>>;

const RETRY = Symbol("retry");

export class FailoverController {
  private readonly startedAtMs: number;
  /** Clock time each registered node was first seen dead; bounded by the registered nodes. */
  private readonly deadSince = new Map<string, number>();
  private readonly passes: SerialPasses<FailoverPassResult>;
  private cancelWake: (() => void) | undefined;
  private wakeAt = Infinity;
  private readonly casMaxAttempts: number;
  private last: FailoverPassResult | undefined;
  /** What the last "shards stay short" warning said, so a steady state is logged once. */
  private lastShortfall = "";
  /** Deferred shards ("collection/shard") with what was logged about them; bounded by the catalog's shards. */
  private deferredLogged = new Map<string, string>();
  /** One client per storage node address; pruned to the alive storage nodes every pass. */
  private readonly clients: NodeClients<typeof StorageService>;

  constructor(private readonly opts: FailoverOptions) {
    this.startedAtMs = opts.clock.now();
    this.casMaxAttempts = opts.casMaxAttempts ?? 8;
    this.clients = new NodeClients(StorageService, opts.storageClient);
    this.passes = new SerialPasses({
      clock: opts.clock,
      intervalMs: opts.intervalMs,
      run: (signal) => this.runPass(signal),
      onError: (e) => {
        if (e instanceof UnavailableError) {
          this.opts.observer?.pass?.("skipped");
          this.opts.logger.warn("failover pass skipped: the metadata store is unreachable; no node is treated as dead until it answers again", { err: e });
        } else {
          this.opts.observer?.pass?.("failed");
          this.opts.logger.error("failover pass failed; retrying at the next change or interval", { err: e });
        }
      },
    });
  }

  /** Follows `catalog`'s feed and runs the periodic pass. */
  start(catalog: Catalog): void {
    if (!this.passes.follow(catalog)) return;
    this.opts.logger.info("failover controller started", {
      intervalMs: this.opts.intervalMs,
      graceMs: this.opts.graceMs,
      recoveryGraceMs: this.opts.recoveryGraceMs,
    });
  }

  /** The result of the last pass that read the store. */
  get lastPass(): FailoverPassResult | undefined {
    return this.last;
  }

  /** Stops triggering passes and waits for the running one. */
  async close(): Promise<void> {
    this.cancelWake?.();
    await this.passes.close();
  }

  /** Schedules a pass (coalesced with one already waiting). */
  trigger(): void {
    this.passes.trigger();
  }

  /** Runs one pass now (after any running one) and returns what it did. Tests call it directly. */
  pass(signal: AbortSignal = this.passes.signal): Promise<FailoverPassResult> {
    return this.passes.pass(signal);
  }

  /** Wakes the controller when the earliest waiting dead node becomes replaceable. */
  private armWake(at: number): void {
    if (at >= this.wakeAt || this.passes.signal.aborted) return;
    this.cancelWake?.();
    this.wakeAt = at;
    this.cancelWake = this.opts.clock.setTimer(
      () => {
        this.wakeAt = Infinity;
        this.cancelWake = undefined;
        this.trigger();
      },
      at - this.opts.clock.now(),
    );
  }

  private async runPass(signal: AbortSignal): Promise<FailoverPassResult> {
    const delays = backoffDelays({ initialMs: 2, maxMs: 200, multiplier: 2, jitter: "full" });
    const moves: (ReplicaMove & { collection: string })[] = [];
    const statuses: StatusCache = new Map();
    for (let attempt = 1; ; attempt++) {
      const r = await this.attempt(signal, moves, statuses);
      if (r !== RETRY) {
        this.last = r;
        this.opts.observer?.pass?.("ok");
        return r;
      }
      this.opts.observer?.casConflict?.();
      if (attempt >= this.casMaxAttempts) {
        // The catalog keeps changing; every change triggers another pass anyway.
        this.opts.logger.warn("failover pass gave up after repeated concurrent catalog changes; the next change or interval retries", { attempts: attempt });
        this.trigger();
        const r2: FailoverPassResult = { moves, deadNodes: [], waitingNodes: [], unplaced: 0, withoutLiveReplica: [], deferred: [] };
        this.last = r2;
        return r2;
      }
      await abortableSleep(delays.next().value ?? 200, signal);
    }
  }

  /** One read and the transactions it plans; RETRY after a lost compare (moves made so far stay in `moves`). */
  private async attempt(
    signal: AbortSignal,
    moves: (ReplicaMove & { collection: string })[],
    statuses: StatusCache,
  ): Promise<FailoverPassResult | typeof RETRY> {
    const snap = await readCatalogSnapshot(this.opts.store, this.opts.keys, signal);
    const now = this.opts.clock.now();
    const { replaceable, waiting, nextAt } = this.classify(snap, now);
    if (nextAt !== undefined) this.armWake(nextAt);
    const load = storageLoad(snap);
    const names = [...snap.collections.keys()].sort().filter((n) => snap.collections.get(n)?.rec.state !== "dropping");
    const { serving, failed } = await this.servingReplicas(snap, names, load, replaceable, statuses, signal);
    let versionRevision = snap.versionRevision;
    let unplaced = 0;
    const withoutLiveReplica: string[] = [];
    const deferred: { shard: string; reason: DeferReason; sources: readonly string[]; replicas: number }[] = [];
    for (const name of names) {
      const c = snap.collections.get(name);
      if (c === undefined) continue;
      const plan = planRepairs({ collection: name, shards: c.rec.shards, replicationFactor: c.rec.spec.replicationFactor, replaceable, load, serving });
      unplaced += plan.unplaced;
      for (const s of plan.withoutLiveReplica) withoutLiveReplica.push(`${name}/${s}`);
      for (const d of plan.deferred) {
        const reason: DeferReason = d.sources.some((n) => failed.has(n)) ? "status_unavailable" : "no_serving_replica";
        deferred.push({ shard: `${name}/${d.shard}`, reason, sources: d.sources, replicas: d.replicas });
      }
      if (plan.moves.length === 0) continue;
      const rec: CollectionRecord = { ...c.rec, shards: plan.shards };
      const key = this.opts.keys.collection(name);
      const compares: TxnCompare[] = [{ key, modRevision: c.modRevision }];
      const seen = new Set<string>();
      for (const m of plan.moves) {
        if (m.from !== undefined && !seen.has(m.from)) {
          seen.add(m.from);
          compares.push({ key: this.opts.keys.aliveNode(m.from), modRevision: 0 });
        }
        if (!seen.has(m.to)) {
          seen.add(m.to);
          compares.push({ key: this.opts.keys.aliveNode(m.to), modRevision: snap.alive.get(m.to) ?? 0 });
        }
      }
      const res = await commitCatalogChange(this.opts.store, this.opts.keys, versionRevision, { compares, puts: [{ key, value: encodeCollection(rec) }] }, { signal });
      if (!res.committed) return RETRY;
      versionRevision = res.revision;
      for (const m of plan.moves) {
        const move = { collection: name, ...m };
        moves.push(move);
        this.opts.observer?.move?.(move);
        this.opts.logger.info(m.from === undefined ? "failover: shard replica added" : "failover: shard replica moved off a dead node", {
          collection: name,
          uid: c.rec.uid,
          shard: m.shard,
          from: m.from ?? null,
          to: m.to,
          revision: res.revision,
        });
      }
    }
    const shortfall = unplaced > 0 || withoutLiveReplica.length > 0 ? `${unplaced}/${withoutLiveReplica.join(",")}/${[...replaceable].sort().join(",")}` : "";
    if (shortfall !== this.lastShortfall && shortfall !== "") {
      this.opts.logger.warn("failover: some shards stay short of live replicas until nodes change", {
        unplacedReplicas: unplaced,
        shardsWithoutLiveReplica: withoutLiveReplica.slice(0, 20),
        deadNodes: [...replaceable].sort(),
      });
    }
    this.lastShortfall = shortfall;
    this.noteDeferred(deferred, failed);
    return {
      moves,
      deadNodes: [...replaceable].sort(),
      waitingNodes: waiting.sort(),
      unplaced,
      withoutLiveReplica,
      deferred: deferred.map((d) => ({ shard: d.shard, reason: d.reason })),
    };
  }

  /**
   * The replicas confirmed SERVING by their nodes, for the shards that need work: each
   * alive storage node hosting a listed replica of one is asked once per pass
   * (`statuses`). `failed`: the nodes asked that gave no usable answer, with why.
   */
  private async servingReplicas(
    snap: CatalogSnapshot,
    names: readonly string[],
    load: ReadonlyMap<string, number>,
    replaceable: ReadonlySet<string>,
    statuses: StatusCache,
    signal: AbortSignal,
  ): Promise<{ serving: Set<string>; failed: Map<string, string> }> {
    this.clients.retain([...load.keys()].flatMap((id) => snap.nodes.get(id)?.address ?? []));
    const ask = new Set<string>();
    for (const name of names) {
      const rec = snap.collections.get(name)?.rec;
      if (rec === undefined) continue;
      for (const s of rec.shards) {
        if (needsRepair(s, rec.spec.replicationFactor, replaceable)) for (const r of s.replicas) if (load.has(r)) ask.add(r);
      }
    }
    const serving = new Set<string>();
    const failed = new Map<string, string>();
    const answers = await Promise.all(
      [...ask].sort().map(async (id) => {
        const node = snap.nodes.get(id);
        if (node === undefined) return { id, status: new Error("not registered") };
        let p = statuses.get(id);
        if (p === undefined) {
          p = this.status(node, signal);
          statuses.set(id, p);
        }
        return { id, status: await p };
      }),
    );
    if (signal.aborted) throw abortReason(signal);
    for (const { id, status } of answers) {
      if (status instanceof Error) {
        failed.set(id, status.message);
        continue;
      }
      for (const r of status.shards) {
        if (r.state !== ReplicaState.SERVING) continue;
        // A copy of another incarnation (the collection dropped and recreated under the
        // same name; the node not yet past the DROP) holds none of this one's data, so it
        // is no source. A status without a uid is an older node's: name and shard decide.
        const uid = snap.collections.get(r.collection)?.rec.uid ?? "";
        if (r.uid !== "" && uid !== "" && r.uid !== uid) continue;
        serving.add(replicaKey(r.collection, r.shard, id));
      }
    }
    return { serving, failed };
  }

  /** The node's GetStorageStatus answer, or the error that stands for it (a failed call, another node answering). */
  private async status(node: NodeRecord, signal: AbortSignal): Promise<GetStorageStatusResponse | Error> {
    const timeoutMs = this.opts.statusTimeoutMs ?? 2_000;
    try {
      const res = await this.clients.read(node.address, (c) => c.getStorageStatus({}, { signal, timeoutMs }), signal);
      // Another process at a reused address says nothing about this node's replicas.
      if (res.node !== "" && res.node !== node.id) return new Error(`${node.address} answers as node ${JSON.stringify(res.node)}`);
      return res;
    } catch (e) {
      // Deciding nothing is the safe answer; the caller reports it per shard.
      return e instanceof Error ? e : new Error(String(e));
    }
  }

  /** Warns once per deferred shard (and reason), counts it, and notes shards no longer deferred. */
  private noteDeferred(
    deferred: readonly { shard: string; reason: DeferReason; sources: readonly string[]; replicas: number }[],
    failed: ReadonlyMap<string, string>,
  ): void {
    const next = new Map<string, string>();
    for (const d of deferred) {
      next.set(d.shard, d.reason);
      if (this.deferredLogged.get(d.shard) === d.reason) continue;
      this.opts.observer?.deferred?.(d.reason);
      const why =
        d.reason === "status_unavailable"
          ? "some of its alive replicas' nodes did not answer GetStorageStatus, and none that answered reports the shard SERVING"
          : "none of its alive replicas reports the shard SERVING yet (bootstrapping or catching up): a new replica would have no peer to copy from";
      this.opts.logger.warn(`failover: shard repair deferred: ${why}; retried every pass`, {
        shard: d.shard,
        reason: d.reason,
        replicasWaiting: d.replicas,
        aliveReplicas: d.sources,
        ...(d.reason === "status_unavailable" ? { statusErrors: Object.fromEntries(d.sources.flatMap((n) => (failed.has(n) ? [[n, failed.get(n)]] : []))) } : {}),
      });
    }
    for (const shard of this.deferredLogged.keys()) {
      if (!next.has(shard)) this.opts.logger.info("failover: shard repair no longer deferred", { shard });
    }
    this.deferredLogged = next;
  }

  /** Updates when each node was first seen dead and splits dead nodes into replaceable and waiting. */
  private classify(snap: CatalogSnapshot, now: number): { replaceable: Set<string>; waiting: string[]; nextAt: number | undefined } {
    for (const id of [...this.deadSince.keys()]) if (!snap.nodes.has(id) || snap.alive.has(id)) this.deadSince.delete(id);
    const recoveredAt = this.opts.health?.().recoveredAtMs ?? this.startedAtMs;
    const quietSince = Math.max(this.startedAtMs, recoveredAt);
    const replaceable = new Set<string>();
    const waiting: string[] = [];
    let nextAt: number | undefined;
    for (const [id, node] of snap.nodes) {
      if (snap.alive.has(id) || !node.roles.includes(NodeRole.STORAGE)) continue;
      let since = this.deadSince.get(id);
      if (since === undefined) {
        since = now;
        this.deadSince.set(id, now);
        this.opts.logger.info("failover: storage node seen dead (lease expired)", { node: id });
      }
      const at = Math.max(since + this.opts.graceMs, quietSince + Math.max(this.opts.recoveryGraceMs, node.ttlMs ?? 0));
      if (now >= at) replaceable.add(id);
      else {
        waiting.push(id);
        nextAt = nextAt === undefined ? at : Math.min(nextAt, at);
      }
    }
    return { replaceable, waiting, nextAt };
  }
}
