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
// When a dead node counts (timing):
// - `graceMs` after the controller first saw it dead, so a node that re-registers right
//   away (a restart, a pause just past its TTL) keeps its shards.
// - Not before `recoveryGraceMs` (a node lease TTL) after the controller started or after
//   the store last came back from an outage. Nodes renew leases through the meta-manager,
//   so while the meta-manager or its store was unreachable their heartbeats failed; a
//   lease that expired then says nothing about the node, which gets a full TTL to renew
//   or re-register. (etcd itself restores leases with a fresh TTL when it restarts.)
//
// Each collection's changes are one transaction that compares the collection record, the
// catalog version key (rewritten, as every catalog change does: catalog.ts), the removed
// nodes' alive keys (still absent) and the added nodes' alive keys (unchanged), so a move
// is made against exactly the liveness it was planned on. A lost compare re-reads.
//
// Passes run when the catalog feed sees a change (a lease expiring deletes an alive key; a
// node registering adds one), when a dead node's grace ends, and every `intervalMs` as a
// safety net. Passes never overlap; triggers during a pass coalesce into one more pass.
import { UnavailableError, abortableSleep, backoffDelays, type Logger } from "@vecraft/common";
import { NodeRole } from "@vecraft/rpc";
import type { Catalog } from "./catalog.js";
import { planRepairs, type ReplicaMove } from "./placement.js";
import { EMPTY, encodeCollection, readCatalogSnapshot, storageLoad, type CatalogKeys, type CatalogSnapshot, type CollectionRecord } from "./records.js";
import { SerialPasses } from "./serial-passes.js";
import type { Clock } from "./store/clock.js";
import type { MetaStore, TxnCompare } from "./store/meta-store.js";
import type { StoreHealth } from "./store/tracked-store.js";

export interface FailoverObserver {
  /** One replica moved (`from` undefined: a shard topped up). */
  move?(move: ReplicaMove & { readonly collection: string }): void;
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
  /** No node counts as dead until this long after start and after a store outage ends. */
  readonly recoveryGraceMs: number;
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
}

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

  constructor(private readonly opts: FailoverOptions) {
    this.startedAtMs = opts.clock.now();
    this.casMaxAttempts = opts.casMaxAttempts ?? 8;
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
    for (let attempt = 1; ; attempt++) {
      const r = await this.attempt(signal, moves);
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
        const r2: FailoverPassResult = { moves, deadNodes: [], waitingNodes: [], unplaced: 0, withoutLiveReplica: [] };
        this.last = r2;
        return r2;
      }
      await abortableSleep(delays.next().value ?? 200, signal);
    }
  }

  /** One read and the transactions it plans; RETRY after a lost compare (moves made so far stay in `moves`). */
  private async attempt(signal: AbortSignal, moves: (ReplicaMove & { collection: string })[]): Promise<FailoverPassResult | typeof RETRY> {
    const snap = await readCatalogSnapshot(this.opts.store, this.opts.keys, signal);
    const now = this.opts.clock.now();
    const { replaceable, waiting, nextAt } = this.classify(snap, now);
    if (nextAt !== undefined) this.armWake(nextAt);
    const load = storageLoad(snap);
    let versionRevision = snap.versionRevision;
    let unplaced = 0;
    const withoutLiveReplica: string[] = [];
    const names = [...snap.collections.keys()].sort();
    for (const name of names) {
      const c = snap.collections.get(name);
      if (c === undefined || c.rec.state === "dropping") continue;
      const plan = planRepairs({ shards: c.rec.shards, replicationFactor: c.rec.spec.replicationFactor, replaceable, load });
      unplaced += plan.unplaced;
      for (const s of plan.withoutLiveReplica) withoutLiveReplica.push(`${name}/${s}`);
      if (plan.moves.length === 0) continue;
      const rec: CollectionRecord = { ...c.rec, shards: plan.shards };
      const key = this.opts.keys.collection(name);
      const compares: TxnCompare[] = [
        { key, modRevision: c.modRevision },
        { key: this.opts.keys.version, modRevision: versionRevision },
      ];
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
      const res = await this.opts.store.txn(
        {
          compares,
          puts: [
            { key, value: encodeCollection(rec) },
            { key: this.opts.keys.version, value: EMPTY },
          ],
        },
        { signal },
      );
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
    return { moves, deadNodes: [...replaceable].sort(), waitingNodes: waiting.sort(), unplaced, withoutLiveReplica };
  }

  /** Updates when each node was first seen dead and splits dead nodes into replaceable and waiting. */
  private classify(snap: CatalogSnapshot, now: number): { replaceable: Set<string>; waiting: string[]; nextAt: number | undefined } {
    for (const id of [...this.deadSince.keys()]) if (!snap.nodes.has(id) || snap.alive.has(id)) this.deadSince.delete(id);
    const recoveredAt = this.opts.health?.().recoveredAtMs ?? this.startedAtMs;
    const quietFrom = Math.max(this.startedAtMs, recoveredAt) + this.opts.recoveryGraceMs;
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
      const at = Math.max(since + this.opts.graceMs, quietFrom);
      if (now >= at) replaceable.add(id);
      else {
        waiting.push(id);
        nextAt = nextAt === undefined ? at : Math.min(nextAt, at);
      }
    }
    return { replaceable, waiting, nextAt };
  }
}
