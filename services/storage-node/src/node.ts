// A storage node: the shard replicas it hosts, one journal subscription per partition it
// follows, and the per-partition watermark (offset and ts of the last entry applied to
// every hosted shard of that partition) that reads wait on.
//
// Replicas come from CREATE entries (standalone hosts every shard; a cluster node the
// shards the entry's `replicas` place on it) or from a bootstrap (a peer's snapshot, or a rebuild from the journal, then a catch-up to the
// partition's position) when the catalog places an existing shard here later
// (placement.ts decides which).
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import Database from "better-sqlite3";
import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { abortableSleep, backoffDelays, DeadlineExceededError, FailedPreconditionError, NotFoundError, UnavailableError, type Logger } from "@vecraft/common";
import { CollectionSchema, DataPayloadSchema, DdlOp, DdlPayloadSchema, EntryType, type DataPayload, type DdlPayload, type GetShardSnapshotResponseSchema, type JournalEntry, type JournalService, type StorageService } from "@vecraft/rpc";
import { DEFAULT_CHUNK_BYTES, receiveSnapshot, scratchDir, serveSnapshot } from "./snapshot.js";
import { Shard, shardKey } from "./shard.js";
import { ShardStore, type ShardWrite } from "./shard-store.js";
import { VectorIndex } from "./vector-index.js";
import { indexedFieldExpressions, shardSpecFrom, type ShardSpec } from "./spec.js";

export interface Position {
  readonly offset: number;
  readonly ts: bigint;
}

export interface ReadTargetInput {
  readonly minOffset: number;
  readonly minTs: bigint;
}

/** Counters the node feeds (metrics.ts implements them; tests may leave them out). */
export interface NodeStats {
  bootstrapBytes(n: number): void;
  bootstrapFinished(source: BootstrapSource, outcome: "completed" | "failed"): void;
  catchUpEntries(n: number): void;
}

export type BootstrapSource = "snapshot" | "journal";

/** A peer replica to copy a snapshot from. */
export interface SnapshotPeer {
  readonly nodeId: string;
  readonly client: Client<typeof StorageService>;
}

/** A shard replica the catalog places on this node that it must build. */
export interface BootstrapTask {
  readonly collection: string;
  readonly shard: number;
  readonly partition: number;
  readonly uid: string;
  /** Peers to try, in order (alive replicas of the shard on other nodes). */
  readonly peers: readonly SnapshotPeer[];
}

export type ReplicaStateName = "serving" | "bootstrapping" | "catching_up";

export interface ReplicaStatus {
  readonly collection: string;
  readonly shard: number;
  readonly partition: number;
  readonly uid: string;
  readonly state: ReplicaStateName;
  /** The open replica (always when serving; once installed when catching up). */
  readonly replica: Shard | undefined;
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

export interface StorageNodeOptions {
  readonly dataDir: string;
  readonly nodeId: string;
  /** The journal partitions this node follows. */
  readonly partitions: readonly number[];
  readonly journal: Client<typeof JournalService>;
  readonly logger: Logger;
  /**
   * Host a replica of every shard (standalone). When false, a CREATE entry creates only
   * the shards its `replicas` place on this node; later placements arrive as bootstraps.
   */
  readonly hostAll: boolean;
  readonly exactThreshold: number;
  /** Checkpoint a shard's index after this many applied entries changed it. */
  readonly checkpointEveryWrites: number;
  readonly subscribeBatchEntries: number;
  readonly stats?: NodeStats;
  /** Largest snapshot chunk to ask peers for (0: their default). */
  readonly snapshotChunkBytes?: number;
}

const REGISTRY = `
CREATE TABLE IF NOT EXISTS shards (
  collection     TEXT NOT NULL,
  shard          INTEGER NOT NULL,
  partition      INTEGER NOT NULL,
  created_offset INTEGER NOT NULL,
  spec           BLOB NOT NULL,
  dir            TEXT NOT NULL,
  uid            TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (collection, shard)
);
CREATE TABLE IF NOT EXISTS cursors (
  partition INTEGER PRIMARY KEY,
  offset    INTEGER NOT NULL,
  ts        INTEGER NOT NULL
);
`;

interface Follower {
  readonly partition: number;
  position: Position;
  persisted: number;
  persistedAtMs: number;
  readonly listeners: Set<() => void>;
  /** Set while a batch is being applied: a bootstrap must not join the partition mid-batch. */
  applying: Promise<void> | undefined;
}

interface Bootstrap {
  readonly task: BootstrapTask;
  readonly key: string;
  state: "bootstrapping" | "catching_up";
  source: BootstrapSource;
  bytesDone: number;
  bytesTotal: number;
  readonly abort: AbortController;
  /** Why it was cancelled (for the log), once it was. */
  cancelled?: string;
  /** The replica being caught up (not yet served). */
  replica?: Shard | undefined;
  /** Its directory (removed unless it is installed). */
  dir?: string | undefined;
  specBytes?: Uint8Array;
}

/** Thrown inside a bootstrap that was cancelled (drop, placement change, shutdown). */
class BootstrapCancelled extends Error {}

export class StorageNode {
  private readonly shards = new Map<string, Shard>();
  private readonly bootstraps = new Map<string, Bootstrap>();
  private readonly followers = new Map<number, Follower>();
  private readonly writesSinceCheckpoint = new Map<string, number>();
  /** Shards whose index is being restored, and how many rows have been replayed so far. */
  private readonly restoring = new Map<string, number>();
  private readonly stop = new AbortController();
  private loops: Promise<void>[] = [];
  private readonly registry: Database.Database;
  private readonly storageDir: string;
  private isStarted = false;

  private constructor(private readonly opts: StorageNodeOptions) {
    this.storageDir = join(opts.dataDir, "storage");
    mkdirSync(this.storageDir, { recursive: true });
    this.registry = new Database(join(this.storageDir, "node.sqlite"));
    this.registry.pragma("journal_mode = WAL");
    // Derived state: losing the last cursor update only means re-reading a few entries.
    this.registry.pragma("synchronous = NORMAL");
    this.registry.exec(REGISTRY);
    // Registries written before collection uids were kept.
    const columns = this.registry.prepare<[], { name: string }>("PRAGMA table_info(shards)").all();
    if (!columns.some((c) => c.name === "uid")) this.registry.exec("ALTER TABLE shards ADD COLUMN uid TEXT NOT NULL DEFAULT ''");
    this.registry.defaultSafeIntegers(true);
  }

  /** Creates the node and starts it (tests; services use create + start). */
  static async open(opts: StorageNodeOptions): Promise<StorageNode> {
    const node = StorageNode.create(opts);
    await node.start();
    return node;
  }

  /** A node that has not opened its shards yet (so metrics and the server can come up first). */
  static create(opts: StorageNodeOptions): StorageNode {
    return new StorageNode(opts);
  }

  /** True once every registered shard is open and the journal is being followed. */
  get started(): boolean {
    return this.isStarted;
  }

  /** Opens every registered shard (restoring its index), then starts following the journal. */
  async start(): Promise<void> {
    const rows = this.registry
      .prepare<[], { collection: string; shard: bigint; partition: bigint; spec: Buffer; dir: string; uid: string }>("SELECT * FROM shards")
      .all();
    this.removeUnregisteredDirs(rows.map((r) => r.dir));
    for (const r of rows) {
      if (this.stop.signal.aborted) return;
      const spec = shardSpecFrom(fromBinary(CollectionSchema, r.spec));
      const s = await this.loadShard(r.collection, Number(r.shard), Number(r.partition), r.uid, spec, r.dir);
      this.shards.set(s.key, s);
    }
    for (const p of this.opts.partitions) {
      const c = this.registry.prepare<[number], { offset: bigint; ts: bigint }>("SELECT offset, ts FROM cursors WHERE partition = ?").get(p);
      const position = { offset: c ? Number(c.offset) : 0, ts: c?.ts ?? 0n };
      this.followers.set(p, { partition: p, position, persisted: position.offset, persistedAtMs: Date.now(), listeners: new Set(), applying: undefined });
    }
    for (const f of this.followers.values()) this.loops.push(this.follow(f));
    this.isStarted = true;
  }

  get nodeId(): string {
    return this.opts.nodeId;
  }

  /** The serving replica of (collection, shard): UNAVAILABLE while it is being built, else NOT_FOUND. */
  shard(collection: string, shard: number): Shard {
    const key = shardKey(collection, shard);
    const s = this.shards.get(key);
    if (s) return s;
    const b = this.bootstraps.get(key);
    if (b) {
      const what = b.state === "bootstrapping" ? (b.source === "snapshot" ? "copying a snapshot from a peer" : "rebuilding from the journal") : "catching up with the journal";
      throw new UnavailableError(`shard ${shard} of collection ${collection} on storage node ${this.opts.nodeId} is not serving yet: ${what}; read another replica`);
    }
    throw new NotFoundError(`shard ${shard} of collection ${collection} is not hosted on storage node ${this.opts.nodeId}`);
  }

  hostedShards(): Shard[] {
    return [...this.shards.values()];
  }

  /** Every local replica: serving ones and the ones being bootstrapped. */
  replicas(): ReplicaStatus[] {
    const out: ReplicaStatus[] = [...this.shards.values()].map((s) => ({
      collection: s.collection,
      shard: s.shard,
      partition: s.partition,
      uid: s.uid,
      state: "serving",
      replica: s,
      bytesDone: 0,
      bytesTotal: 0,
    }));
    for (const b of this.bootstraps.values()) {
      const { collection, shard, partition, uid } = b.task;
      out.push({ collection, shard, partition, uid, state: b.state, replica: b.replica, bytesDone: b.bytesDone, bytesTotal: b.bytesTotal });
    }
    return out;
  }

  /** True when (collection, shard) is served or being bootstrapped here. */
  hasReplica(collection: string, shard: number): boolean {
    const key = shardKey(collection, shard);
    return this.shards.has(key) || this.bootstraps.has(key);
  }

  /** Rows replayed so far per shard whose index is being restored (startup, rebuilds). */
  restoreProgress(): { shard: string; rows: number }[] {
    return [...this.restoring].map(([shard, rows]) => ({ shard, rows }));
  }

  position(partition: number): Position {
    return this.followers.get(partition)?.position ?? { offset: 0, ts: 0n };
  }

  partitionPositions(): { partition: number; position: Position }[] {
    return [...this.followers.values()].map((f) => ({ partition: f.partition, position: f.position }));
  }

  follows(partition: number): boolean {
    return this.followers.has(partition);
  }

  /**
   * Waits until `partition` is applied through the target (offset and ts), or fails with
   * DEADLINE_EXCEEDED: a read never answers from state older than it asked for.
   */
  async waitFor(partition: number, target: ReadTargetInput, waitMs: number, signal: AbortSignal): Promise<Position> {
    const f = this.followers.get(partition);
    if (!f) throw new NotFoundError(`storage node ${this.opts.nodeId} does not follow partition ${partition}`);
    const reached = (): boolean => f.position.offset >= target.minOffset && f.position.ts >= target.minTs;
    if (reached()) return f.position;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        finish(
          new DeadlineExceededError(
            `partition ${partition} is applied through offset ${f.position.offset} (ts ${f.position.ts}) on storage node ${this.opts.nodeId}; ` +
              `the read needs offset >= ${target.minOffset} and ts >= ${target.minTs}; gave up after ${waitMs} ms rather than answer from older data`,
          ),
        );
      }, waitMs);
      const onAbort = (): void => finish(signal.reason instanceof Error ? signal.reason : new DeadlineExceededError("the read was cancelled"));
      const listener = (): void => {
        if (reached()) finish();
      };
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        f.listeners.delete(listener);
        if (err) reject(err);
        else resolve();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      f.listeners.add(listener);
    });
    return f.position;
  }

  /**
   * A snapshot of a serving replica (StorageService.GetShardSnapshot). `uid` must be the
   * replica's collection incarnation; a replica still being built is UNAVAILABLE.
   */
  snapshot(collection: string, shard: number, uid: string, chunkBytes: number, signal: AbortSignal): AsyncGenerator<MessageInitShape<typeof GetShardSnapshotResponseSchema>> {
    const s = this.shard(collection, shard);
    if (uid && s.uid && uid !== s.uid) {
      throw new FailedPreconditionError(`shard ${shard} of collection ${collection} on storage node ${this.opts.nodeId} belongs to incarnation ${s.uid}, not ${uid}`);
    }
    const size = chunkBytes > 0 ? Math.min(chunkBytes, DEFAULT_CHUNK_BYTES) : DEFAULT_CHUNK_BYTES;
    this.opts.logger.info("serving shard snapshot", { collection, shard, uid: s.uid, appliedOffset: s.store.appliedOffset });
    return serveSnapshot(s, { scratch: scratchDir(this.storageDir, "snapshot"), nodeId: this.opts.nodeId, uid: s.uid, chunkBytes: size, signal });
  }

  /**
   * Builds a replica the catalog placed here: a snapshot from the first peer that gives
   * one (else a rebuild from the journal), then a catch-up to the partition follower's
   * position, then it joins the served replicas. Resolves when it serves (or was already
   * here); rejects when it failed or was cancelled, leaving nothing on disk.
   */
  async bootstrap(task: BootstrapTask): Promise<void> {
    const key = shardKey(task.collection, task.shard);
    if (this.shards.has(key) || this.bootstraps.has(key) || this.stop.signal.aborted) return;
    const f = this.followers.get(task.partition);
    if (!f) throw new NotFoundError(`storage node ${this.opts.nodeId} does not follow partition ${task.partition} (shard ${task.shard} of ${task.collection})`);
    const b: Bootstrap = { task, key, state: "bootstrapping", source: "snapshot", bytesDone: 0, bytesTotal: 0, abort: new AbortController() };
    this.bootstraps.set(key, b);
    const log = this.opts.logger.child({ collection: task.collection, shard: task.shard, uid: task.uid });
    const signal = AbortSignal.any([b.abort.signal, this.stop.signal]);
    let installed = false;
    try {
      log.info("bootstrapping shard replica", { peers: task.peers.map((p) => p.nodeId) });
      let from = 1;
      for (const peer of task.peers) {
        signal.throwIfAborted();
        const scratch = scratchDir(this.storageDir, "bootstrap");
        b.bytesDone = 0;
        b.bytesTotal = 0;
        try {
          let lastLogged = 0;
          const header = await receiveSnapshot(
            peer.client,
            { collection: task.collection, shard: task.shard, uid: task.uid, chunkBytes: this.opts.snapshotChunkBytes ?? 0 },
            scratch,
            {
              onHeader: (total) => {
                b.bytesTotal = total;
                log.info("receiving shard snapshot", { from: peer.nodeId, bytes: total });
              },
              onBytes: (n) => {
                b.bytesDone += n;
                this.opts.stats?.bootstrapBytes(n);
                if (b.bytesDone - lastLogged >= 64 << 20) {
                  lastLogged = b.bytesDone;
                  log.info("receiving shard snapshot", { from: peer.nodeId, bytesDone: b.bytesDone, bytesTotal: b.bytesTotal });
                }
              },
            },
            signal,
          );
          if (header.partition !== task.partition) throw new Error(`snapshot is of partition ${header.partition}, the catalog says ${task.partition}`);
          const dir = this.replicaDir(task.collection, Number(header.createdOffset), task.shard, true);
          mkdirSync(dirname(dir), { recursive: true });
          renameSync(scratch, dir);
          b.dir = dir;
          b.specBytes = header.spec;
          b.state = "catching_up";
          const spec = shardSpecFrom(fromBinary(CollectionSchema, header.spec));
          b.replica = await this.loadShard(task.collection, task.shard, task.partition, task.uid, spec, dir);
          from = b.replica.store.appliedOffset + 1;
          log.info("shard snapshot installed; catching up", { from: peer.nodeId, bytes: b.bytesTotal, appliedOffset: b.replica.store.appliedOffset, partitionOffset: f.position.offset });
          break;
        } catch (e) {
          rmSync(scratch, { recursive: true, force: true });
          if (signal.aborted) throw e;
          this.opts.stats?.bootstrapFinished("snapshot", "failed");
          log.warn("shard snapshot from peer failed; trying the next", { from: peer.nodeId, err: e });
          b.replica?.close();
          b.replica = undefined;
          if (b.dir) rmSync(b.dir, { recursive: true, force: true });
          b.dir = undefined;
          b.state = "bootstrapping";
        }
      }
      if (!b.replica) {
        b.source = "journal";
        log.info("no peer gave a snapshot; rebuilding the replica from the journal", { partition: task.partition });
      }
      await this.catchUp(f, b, from, signal, log);
      installed = true;
      this.opts.stats?.bootstrapFinished(b.source, "completed");
    } catch (e) {
      if (!signal.aborted) this.opts.stats?.bootstrapFinished(b.source, "failed");
      if (b.cancelled !== undefined) throw new BootstrapCancelled(`bootstrap of shard ${task.shard} of ${task.collection} cancelled: ${b.cancelled}`);
      throw e;
    } finally {
      if (!installed) {
        b.replica?.close();
        if (b.dir) this.removeReplicaDir(b.dir);
      }
      if (this.bootstraps.get(key) === b) this.bootstraps.delete(key);
    }
  }

  /** Cancels a bootstrap in progress (placement moved, collection dropped); its files go. */
  cancelBootstrap(collection: string, shard: number, why: string): void {
    const b = this.bootstraps.get(shardKey(collection, shard));
    if (!b || b.cancelled !== undefined) return;
    b.cancelled = why;
    b.abort.abort(new BootstrapCancelled(why));
    this.opts.logger.info("shard bootstrap cancelled", { collection, shard, uid: b.task.uid, why });
  }

  /** Cancels every bootstrap in progress (shutdown). */
  cancelBootstraps(why: string): void {
    for (const b of [...this.bootstraps.values()]) this.cancelBootstrap(b.task.collection, b.task.shard, why);
  }

  /** Closes and deletes a served replica the catalog no longer places here. */
  removeReplica(collection: string, shard: number, why: string): void {
    const s = this.shards.get(shardKey(collection, shard));
    if (!s) return;
    this.deleteShard(s);
    this.opts.logger.info("shard replica removed", { collection, shard, uid: s.uid, partition: s.partition, why });
  }

  async close(): Promise<void> {
    this.stop.abort();
    for (const b of this.bootstraps.values()) b.abort.abort(new BootstrapCancelled("the node is closing"));
    await Promise.allSettled(this.loops);
    for (const f of this.followers.values()) this.persistCursor(f, true);
    for (const s of this.shards.values()) {
      this.checkpoint(s);
      s.close();
    }
    this.shards.clear();
    // Bootstraps clean up after themselves; wait for them so that their files are gone.
    while (this.bootstraps.size > 0) await new Promise((r) => setTimeout(r, 5));
    this.registry.close();
  }

  /** Follows one partition: subscribe, apply, and resubscribe with backoff after errors. */
  private async follow(f: Follower): Promise<void> {
    const signal = this.stop.signal;
    const log = this.opts.logger.child({ partition: f.partition });
    let delays = backoffDelays({ initialMs: 50, maxMs: 2000, multiplier: 2, jitter: 0.2 });
    while (!signal.aborted) {
      try {
        const stream = this.opts.journal.subscribe(
          { partition: f.partition, fromOffset: BigInt(f.position.offset + 1), maxBatchEntries: this.opts.subscribeBatchEntries, rawPayloads: true },
          { signal },
        );
        for await (const msg of stream) {
          delays = backoffDelays({ initialMs: 50, maxMs: 2000, multiplier: 2, jitter: 0.2 });
          if (msg.entries.length === 0) continue;
          f.applying = this.applyEntries(f, msg.entries);
          try {
            await f.applying;
          } finally {
            f.applying = undefined;
          }
        }
      } catch (e) {
        if (signal.aborted) return;
        const wait = delays.next().value ?? 2000;
        log.warn("journal subscription failed; resubscribing", { err: e, retryInMs: wait, nextOffset: f.position.offset + 1 });
        try {
          await abortableSleep(wait, signal);
        } catch {
          // Aborted: the node is closing.
          return;
        }
      }
    }
  }

  /** Applies one message's entries: DDL in order, data grouped per shard, then the watermark. */
  private async applyEntries(f: Follower, entries: readonly JournalEntry[]): Promise<void> {
    let pending = new Map<Shard, ShardWrite[]>();
    const flush = async (through: Position): Promise<void> => {
      for (const [shard, writes] of pending) {
        await shard.apply(writes, through);
        const n = (this.writesSinceCheckpoint.get(shard.key) ?? 0) + writes.length;
        this.writesSinceCheckpoint.set(shard.key, n);
        if (n >= this.opts.checkpointEveryWrites) this.checkpoint(shard);
      }
      pending = new Map();
    };
    let last: Position = f.position;
    for (const e of entries) {
      const offset = Number(e.offset);
      if (offset <= f.position.offset) continue;
      const here: Position = { offset, ts: e.ts };
      const payload = payloadOf(e);
      if (payload?.case === "ddl") {
        await flush(last);
        const ddl = payload.value;
        if (ddl.op === DdlOp.CREATE_COLLECTION) await this.createShards(f.partition, offset, ddl);
        else if (ddl.op === DdlOp.DROP_COLLECTION) this.dropShards(f.partition, ddl);
      } else if (payload?.case === "data") {
        const d = payload.value;
        const shard = this.shards.get(shardKey(d.collection, d.shard));
        if (shard && shard.partition === f.partition && offset > shard.store.appliedOffset) {
          const list = pending.get(shard) ?? [];
          list.push(toWrite(offset, e.ts, d));
          pending.set(shard, list);
        }
      }
      last = here;
    }
    await flush(last);
    f.position = last;
    this.persistCursor(f, false);
    for (const fn of f.listeners) fn();
  }

  /** Does the CREATE entry place `shard` on this node? */
  private placedHere(ddl: DdlPayload, shard: number): boolean {
    if (this.opts.hostAll) return true;
    return ddl.replicas.some((r) => r.shard === shard && r.nodes.includes(this.opts.nodeId));
  }

  private async createShards(partition: number, offset: number, ddl: DdlPayload): Promise<void> {
    const { collection } = ddl;
    const spec = shardSpecFrom(fromBinary(CollectionSchema, ddl.spec));
    for (const s of ddl.shards) {
      if (!this.placedHere(ddl, s)) continue;
      const key = shardKey(collection, s);
      if (this.shards.has(key)) continue; // re-delivered after a restart, or bootstrapped ahead of the follower
      // A bootstrap of this incarnation started before the follower got here: replaying
      // from the CREATE is the cheaper way (and the one the entry asks for).
      const b = this.bootstraps.get(key);
      if (b && b.task.uid === ddl.uid) this.cancelBootstrap(collection, s, "the partition follower reached the collection's CREATE entry");
      const shard = await this.newReplica(collection, s, partition, offset, ddl.uid, spec, this.replicaDir(collection, offset, s));
      this.register(shard, ddl.spec);
      this.shards.set(key, shard);
      this.opts.logger.info("shard created", { collection, shard: s, partition, offset, uid: ddl.uid });
    }
  }

  private dropShards(partition: number, ddl: DdlPayload): void {
    for (const s of [...this.shards.values()]) {
      if (s.collection !== ddl.collection || s.partition !== partition) continue;
      // A replica of a newer incarnation (bootstrapped ahead of this follower) stays.
      if (ddl.uid && s.uid && ddl.uid !== s.uid) continue;
      this.deleteShard(s);
      this.opts.logger.info("shard dropped", { collection: ddl.collection, shard: s.shard, partition });
    }
    for (const b of [...this.bootstraps.values()]) {
      if (b.task.collection !== ddl.collection || b.task.partition !== partition) continue;
      if (ddl.uid && ddl.uid !== b.task.uid) continue;
      this.cancelBootstrap(b.task.collection, b.task.shard, "the collection was dropped");
    }
  }

  private deleteShard(s: Shard): void {
    s.close();
    this.shards.delete(s.key);
    this.writesSinceCheckpoint.delete(s.key);
    this.registry.prepare("DELETE FROM shards WHERE collection = ? AND shard = ?").run(s.collection, s.shard);
    this.removeReplicaDir(s.store.dir);
  }

  /** Removes a replica directory, and its collection directory with its last shard. */
  private removeReplicaDir(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
    const parent = dirname(dir);
    if (parent !== this.storageDir && existsSync(parent) && readdirSync(parent).length === 0) rmSync(parent, { recursive: true, force: true });
  }

  /**
   * Removes what a crash left behind: transfer scratch dirs, and bootstrapped replica
   * dirs (named shard-N.b<hex>) that no registry row names (the bootstrap had not
   * finished). Replica dirs a CREATE made are left alone: the entry is re-delivered and
   * reopens them.
   */
  private removeUnregisteredDirs(registered: readonly string[]): void {
    const keep = new Set(registered.map((d) => resolve(d)));
    for (const name of readdirSync(this.storageDir)) {
      const path = join(this.storageDir, name);
      if (name.startsWith(".snapshot-") || name.startsWith(".bootstrap-")) {
        rmSync(path, { recursive: true, force: true });
        continue;
      }
      if (!/^.+\.\d+$/.test(name)) continue;
      for (const sub of readdirSync(path)) {
        if (!/^shard-\d+\.b[0-9a-f]+$/.test(sub) || keep.has(resolve(path, sub))) continue;
        this.opts.logger.info("removing the files of an unfinished shard bootstrap", { dir: join(path, sub) });
        this.removeReplicaDir(join(path, sub));
      }
    }
  }

  /**
   * A replica's directory; a bootstrapped one gets a name of its own, so that cleaning up a
   * cancelled bootstrap can never touch a replica the follower created meanwhile.
   */
  private replicaDir(collection: string, createdOffset: number, shard: number, bootstrapped = false): string {
    const suffix = bootstrapped ? `.b${randomBytes(4).toString("hex")}` : "";
    return join(this.storageDir, `${collection}.${createdOffset}`, `shard-${shard}${suffix}`);
  }

  private register(s: Shard, specBytes: Uint8Array): void {
    this.registry
      .prepare("INSERT OR REPLACE INTO shards (collection, shard, partition, created_offset, spec, dir, uid) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .run(s.collection, s.shard, s.partition, s.store.identity.createdOffset, Buffer.from(specBytes), s.store.dir, s.uid);
  }

  /**
   * Brings a bootstrapping replica from `from` up to the follower's position, applying
   * only its own entries from a subscription of its own, then makes it serve. Without a
   * replica (no snapshot) it first looks for the collection's CREATE entry (by uid).
   */
  private async catchUp(f: Follower, b: Bootstrap, from: number, signal: AbortSignal, log: Logger): Promise<void> {
    const { collection, shard, uid, partition } = b.task;
    let pos: Position = b.replica ? { offset: b.replica.store.appliedOffset, ts: b.replica.store.appliedTs } : { offset: from - 1, ts: 0n };
    let applied = 0;
    let lastLogged = 0;
    let delays = backoffDelays({ initialMs: 50, maxMs: 2000, multiplier: 2, jitter: 0.2 });
    for (;;) {
      signal.throwIfAborted();
      if (b.replica && pos.offset >= f.position.offset) {
        if (f.applying) {
          // Let the batch in flight finish; it may move the follower past us again.
          await f.applying.catch(() => undefined);
          continue;
        }
        // No await from the check to the insert: the follower applies every entry
        // after pos.offset to the replica from here on.
        this.install(b, b.replica, pos);
        log.info("shard replica serving", { source: b.source, appliedOffset: pos.offset, catchUpEntries: applied });
        return;
      }
      try {
        const stream = this.opts.journal.subscribe(
          { partition, fromOffset: BigInt(pos.offset + 1), maxBatchEntries: this.opts.subscribeBatchEntries, rawPayloads: true },
          { signal },
        );
        for await (const msg of stream) {
          delays = backoffDelays({ initialMs: 50, maxMs: 2000, multiplier: 2, jitter: 0.2 });
          const writes: ShardWrite[] = [];
          let last = pos;
          for (const e of msg.entries) {
            const offset = Number(e.offset);
            if (offset <= pos.offset) continue;
            const payload = payloadOf(e);
            if (payload?.case === "ddl" && payload.value.collection === collection) {
              const ddl = payload.value;
              if (ddl.op === DdlOp.DROP_COLLECTION && b.replica && (!ddl.uid || ddl.uid === uid)) {
                b.cancelled = "the collection was dropped (seen while catching up)";
                throw new BootstrapCancelled(b.cancelled);
              }
              if (ddl.op === DdlOp.CREATE_COLLECTION && !b.replica && ddl.uid === uid && ddl.shards.includes(shard)) {
                b.replica = await this.createReplicaFromDdl(b, offset, ddl);
                log.info("found the collection's CREATE entry; replaying the shard's writes", { offset });
              }
            } else if (payload?.case === "data" && b.replica && payload.value.collection === collection && payload.value.shard === shard) {
              if (offset > b.replica.store.appliedOffset) writes.push(toWrite(offset, e.ts, payload.value));
            }
            last = { offset, ts: e.ts };
          }
          // Advances the replica's applied position even when none of the entries were its own.
          if (b.replica && last.offset > b.replica.store.appliedOffset) await b.replica.apply(writes, last);
          signal.throwIfAborted();
          pos = last;
          applied += writes.length;
          if (writes.length > 0) this.opts.stats?.catchUpEntries(writes.length);
          if (applied - lastLogged >= 10_000) {
            lastLogged = applied;
            log.info("catching up shard replica", { offset: pos.offset, partitionOffset: f.position.offset, entriesApplied: applied });
          }
          if (b.replica && pos.offset >= f.position.offset) break;
        }
      } catch (e) {
        if (signal.aborted || e instanceof BootstrapCancelled) throw e;
        const wait = delays.next().value ?? 2000;
        log.warn("catch-up subscription failed; resubscribing", { err: e, retryInMs: wait, nextOffset: pos.offset + 1 });
        await abortableSleep(wait, signal);
      }
    }
  }

  private async createReplicaFromDdl(b: Bootstrap, offset: number, ddl: DdlPayload): Promise<Shard> {
    const { collection, shard, partition, uid } = b.task;
    const spec = shardSpecFrom(fromBinary(CollectionSchema, ddl.spec));
    b.dir = this.replicaDir(collection, offset, shard, true);
    b.specBytes = ddl.spec;
    return this.newReplica(collection, shard, partition, offset, uid, spec, b.dir);
  }

  /** An empty replica created by the CREATE entry at `createdOffset`, opened. */
  private async newReplica(collection: string, shard: number, partition: number, createdOffset: number, uid: string, spec: ShardSpec, dir: string): Promise<Shard> {
    mkdirSync(dir, { recursive: true });
    ShardStore.open(join(dir, "shard.sqlite"), { collection, shard, partition, createdOffset, specJson: JSON.stringify(spec.params) }).close();
    return this.loadShard(collection, shard, partition, uid, spec, dir);
  }

  /** Synchronous on purpose (see catchUp): register, serve, stop being a bootstrap. */
  private install(b: Bootstrap, replica: Shard, pos: Position): void {
    if (b.abort.signal.aborted || this.stop.signal.aborted) throw new BootstrapCancelled(b.cancelled ?? "the node is closing");
    replica.store.apply([], pos);
    this.register(replica, b.specBytes ?? new Uint8Array(0));
    this.shards.set(b.key, replica);
    this.bootstraps.delete(b.key);
  }

  private async loadShard(collection: string, shard: number, partition: number, uid: string, spec: ShardSpec, dir: string): Promise<Shard> {
    const store = ShardStore.open(join(dir, "shard.sqlite"));
    store.ensureFieldIndexes(indexedFieldExpressions(spec.collection));
    const index = new VectorIndex(spec.params);
    const key = shardKey(collection, shard);
    let lastLogged = 0;
    this.restoring.set(key, 0);
    const how = await index
      .restore(join(dir, "index.usearch"), store, (done) => {
        this.restoring.set(key, done);
        if (done - lastLogged >= 10_000) {
          lastLogged = done;
          this.opts.logger.info("restoring shard index", { collection, shard, rowsReplayed: done, records: store.liveRecords });
        }
      })
      .finally(() => this.restoring.delete(key));
    this.opts.logger.info("shard opened", { collection, shard, partition, index: how, records: store.liveRecords, appliedOffset: store.appliedOffset });
    return new Shard(collection, shard, partition, uid, spec, store, index, { exactThreshold: this.opts.exactThreshold });
  }

  private checkpoint(s: Shard): void {
    try {
      s.index.checkpoint(join(s.store.dir, "index.usearch"), s.store.appliedOffset);
      this.writesSinceCheckpoint.set(s.key, 0);
    } catch (e) {
      // A failed checkpoint costs a longer restart (replay from SQLite), never data.
      this.opts.logger.warn("index checkpoint failed", { collection: s.collection, shard: s.shard, err: e });
    }
  }

  private persistCursor(f: Follower, force: boolean): void {
    if (f.position.offset === f.persisted) return;
    if (!force && Date.now() - f.persistedAtMs < 1000) return;
    this.registry
      .prepare("INSERT INTO cursors (partition, offset, ts) VALUES (?, ?, ?) ON CONFLICT (partition) DO UPDATE SET offset = excluded.offset, ts = excluded.ts")
      .run(f.partition, f.position.offset, f.position.ts);
    f.persisted = f.position.offset;
    f.persistedAtMs = Date.now();
  }
}

function toWrite(offset: number, ts: bigint, d: DataPayload): ShardWrite {
  return { offset, ts, upserts: d.upserts.map((u) => ({ id: u.id, vector: toVector(u.vectorF32), metadataJson: u.metadataJson || "{}" })), deletes: d.deleteIds };
}

/** The entry's payload, decoded here when the journal sent it raw (`raw_payloads`). */
function payloadOf(e: JournalEntry): { case: "data"; value: DataPayload } | { case: "ddl"; value: DdlPayload } | undefined {
  if (e.payload.case !== undefined) return e.payload;
  if (e.payloadBytes.length === 0) return undefined;
  if (e.type === EntryType.DATA) return { case: "data", value: fromBinary(DataPayloadSchema, e.payloadBytes) };
  if (e.type === EntryType.DDL) return { case: "ddl", value: fromBinary(DdlPayloadSchema, e.payloadBytes) };
  return undefined;
}

function toVector(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}
