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
import { Code, type Client } from "@connectrpc/connect";
import { abortableSleep, backoffDelays, DeadlineExceededError, FailedPreconditionError, NotFoundError, ResourceExhaustedError, toConnectError, UnavailableError, type Logger } from "@vecraft/common";
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
  /** Once per bootstrap attempt's outcome. */
  bootstrapFinished(source: BootstrapSource, outcome: "completed" | "failed"): void;
  /** A snapshot from one peer failed (the attempt may still succeed with another). */
  snapshotPeerFailed(): void;
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
  /** Give up on a peer's snapshot stream after this long without a message (default 30 s). */
  readonly snapshotIdleMs?: number;
  /** Snapshots served at once; more answer RESOURCE_EXHAUSTED (default 2). */
  readonly maxConcurrentSnapshots?: number;
  /** How long close() waits for bootstraps and retired replicas to wind down (default 10 s). */
  readonly closeGraceMs?: number;
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

/** Peer answers that no retry of the same peer can fix: the shard is not there (or is another incarnation). */
const FINAL_PEER_CODES: ReadonlySet<Code> = new Set([Code.FailedPrecondition, Code.NotFound]);

const resubscribeDelays = (): Iterator<number, void> => backoffDelays({ initialMs: 50, maxMs: 2000, multiplier: 2, jitter: 0.2 });

export class StorageNode {
  private readonly shards = new Map<string, Shard>();
  private readonly bootstraps = new Map<string, Bootstrap>();
  private readonly followers = new Map<number, Follower>();
  private readonly writesSinceCheckpoint = new Map<string, number>();
  /** Shards whose index is being restored, and how many rows have been replayed so far. */
  private readonly restoring = new Map<string, number>();
  /** Keys of replicas the partition follower is creating from a CREATE entry (an await in progress). */
  private readonly creating = new Set<string>();
  /** Retired replicas not closed yet (see retire). */
  private readonly retiring = new Set<Promise<void>>();
  private readonly createdListeners = new Set<() => void>();
  private placedUid: (collection: string) => string | undefined = () => undefined;
  private snapshotsServing = 0;
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
      let s: Shard;
      try {
        s = await this.loadShard(r.collection, Number(r.shard), Number(r.partition), r.uid, spec, r.dir, this.stop.signal);
      } catch (e) {
        if (this.stop.signal.aborted) return;
        throw e;
      }
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
    return this.shards.has(key) || this.bootstraps.has(key) || this.creating.has(key);
  }

  /**
   * Tells the node which incarnation (uid) of a collection the catalog places, when it
   * knows: it decides which replica wins when two incarnations meet on one key.
   */
  setPlacedUid(fn: (collection: string) => string | undefined): void {
    this.placedUid = fn;
  }

  /** Calls `fn` after the partition follower created replicas from a CREATE entry. */
  onReplicasCreated(fn: () => void): () => void {
    this.createdListeners.add(fn);
    return () => this.createdListeners.delete(fn);
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
    return this.serveBounded(s, size, signal);
  }

  /** serveSnapshot, at most maxConcurrentSnapshots at once, holding the replica open meanwhile. */
  private async *serveBounded(s: Shard, chunkBytes: number, signal: AbortSignal): AsyncGenerator<MessageInitShape<typeof GetShardSnapshotResponseSchema>> {
    const max = this.opts.maxConcurrentSnapshots ?? 2;
    if (this.snapshotsServing >= max) {
      throw new ResourceExhaustedError(`storage node ${this.opts.nodeId} is already serving ${this.snapshotsServing} snapshots; retry`);
    }
    if (s.retired) throw this.movedOff(s);
    this.snapshotsServing++;
    s.acquire();
    try {
      this.opts.logger.info("serving shard snapshot", { collection: s.collection, shard: s.shard, uid: s.uid, appliedOffset: s.store.appliedOffset });
      yield* serveSnapshot(s, { scratch: scratchDir(this.storageDir, "snapshot"), nodeId: this.opts.nodeId, uid: s.uid, chunkBytes, signal });
    } finally {
      this.snapshotsServing--;
      s.release();
    }
  }

  /** What a read or snapshot of a replica retired meanwhile answers. */
  movedOff(s: Shard): NotFoundError {
    return new NotFoundError(`replica of shard ${s.shard} of collection ${s.collection} moved off storage node ${this.opts.nodeId}; read another replica`);
  }

  /**
   * Builds a replica the catalog placed here: a snapshot from the first peer that gives
   * one (else a rebuild from the journal), then a catch-up to the partition follower's
   * position, then it joins the served replicas. Resolves when it serves (or was already
   * here); rejects when it failed or was cancelled, leaving nothing on disk.
   */
  async bootstrap(task: BootstrapTask): Promise<void> {
    const key = shardKey(task.collection, task.shard);
    if (this.hasReplica(task.collection, task.shard) || this.stop.signal.aborted) return;
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
      /** Peers that failed with an error a later attempt may not see (a rebuild would be premature). */
      const transient: string[] = [];
      for (const peer of task.peers) {
        signal.throwIfAborted();
        const scratch = scratchDir(this.storageDir, "bootstrap");
        b.bytesDone = 0;
        b.bytesTotal = 0;
        try {
          await this.copySnapshot(f, b, peer, scratch, signal, log);
          from = (b.replica as Shard).store.appliedOffset + 1;
          break;
        } catch (e) {
          rmSync(scratch, { recursive: true, force: true });
          if (signal.aborted) throw e;
          const code = toConnectError(e).code;
          if (!FINAL_PEER_CODES.has(code)) transient.push(`${peer.nodeId}: ${e instanceof Error ? e.message : String(e)}`);
          this.opts.stats?.snapshotPeerFailed();
          log.warn("shard snapshot from peer failed; trying the next", { from: peer.nodeId, err: e });
          b.replica?.close();
          b.replica = undefined;
          if (b.dir) rmSync(b.dir, { recursive: true, force: true });
          b.dir = undefined;
          b.state = "bootstrapping";
        }
      }
      if (!b.replica && transient.length > 0) {
        // A full journal rebuild is the expensive way: only when no peer can give a
        // snapshot, not when they failed for now (the placement follower retries).
        throw new UnavailableError(`no snapshot of shard ${task.shard} of ${task.collection} could be copied now (${transient.join("; ")}); will retry before rebuilding from the journal`);
      }
      if (!b.replica) {
        b.source = "journal";
        log.info("no peer can give a snapshot; rebuilding the replica from the journal", { partition: task.partition, peers: task.peers.length });
      }
      installed = await this.catchUp(f, b, from, signal, log);
      if (installed) this.opts.stats?.bootstrapFinished(b.source, "completed");
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

  /** Copies one peer's snapshot into `scratch`, moves it into place and opens it as b.replica. */
  private async copySnapshot(f: Follower, b: Bootstrap, peer: SnapshotPeer, scratch: string, signal: AbortSignal, log: Logger): Promise<void> {
    const { task } = b;
    let lastLogged = 0;
    const header = await receiveSnapshot(
      peer.client,
      {
        collection: task.collection,
        shard: task.shard,
        uid: task.uid,
        chunkBytes: this.opts.snapshotChunkBytes ?? 0,
        ...(this.opts.snapshotIdleMs !== undefined ? { idleMs: this.opts.snapshotIdleMs } : {}),
      },
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
    if (header.partition !== task.partition) {
      throw new FailedPreconditionError(`snapshot of shard ${task.shard} of ${task.collection} from ${peer.nodeId} is of partition ${header.partition}, the catalog says ${task.partition}`);
    }
    const dir = this.replicaDir(task.collection, Number(header.createdOffset), task.shard, true);
    mkdirSync(dirname(dir), { recursive: true });
    renameSync(scratch, dir);
    b.dir = dir;
    b.specBytes = header.spec;
    b.state = "catching_up";
    const spec = shardSpecFrom(fromBinary(CollectionSchema, header.spec));
    b.replica = await this.loadShard(task.collection, task.shard, task.partition, task.uid, spec, dir, signal);
    log.info("shard snapshot installed; catching up", { from: peer.nodeId, bytes: b.bytesTotal, appliedOffset: b.replica.store.appliedOffset, partitionOffset: f.position.offset });
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
    this.retire(s);
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
    // Bootstraps clean up after themselves and retired replicas close once unused: wait
    // for them (so that their files are gone), but not forever (a stuck snapshot reader).
    const deadline = Date.now() + (this.opts.closeGraceMs ?? 10_000);
    while ((this.bootstraps.size > 0 || this.retiring.size > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    if (this.bootstraps.size > 0 || this.retiring.size > 0) {
      this.opts.logger.warn("closing with bootstraps or removed replicas still winding down; a restart sweeps their files", { bootstraps: this.bootstraps.size, retiring: this.retiring.size });
    }
    this.registry.close();
  }

  /** Follows one partition: subscribe, apply, and resubscribe with backoff after errors. */
  private async follow(f: Follower): Promise<void> {
    const signal = this.stop.signal;
    const log = this.opts.logger.child({ partition: f.partition });
    let delays = resubscribeDelays();
    while (!signal.aborted) {
      let failure: unknown;
      try {
        const stream = this.opts.journal.subscribe(
          { partition: f.partition, fromOffset: BigInt(f.position.offset + 1), maxBatchEntries: this.opts.subscribeBatchEntries, rawPayloads: true },
          { signal },
        );
        for await (const msg of stream) {
          delays = resubscribeDelays();
          if (msg.entries.length === 0) continue;
          f.applying = this.applyEntries(f, msg.entries);
          try {
            await f.applying;
          } finally {
            f.applying = undefined;
          }
        }
      } catch (e) {
        failure = e;
      }
      if (signal.aborted) return;
      // Backoff on every resubscribe, also after a stream that ended cleanly (a journal
      // closing streams at once must not be hammered).
      const wait = delays.next().value ?? 2000;
      if (failure === undefined) log.info("journal subscription ended; resubscribing", { retryInMs: wait, nextOffset: f.position.offset + 1 });
      else log.warn("journal subscription failed; resubscribing", { err: failure, retryInMs: wait, nextOffset: f.position.offset + 1 });
      try {
        await abortableSleep(wait, signal);
      } catch {
        // Aborted: the node is closing.
        return;
      }
    }
  }

  /** Applies one message's entries: DDL in order, data grouped per shard, then the watermark. */
  private async applyEntries(f: Follower, entries: readonly JournalEntry[]): Promise<void> {
    let pending = new Map<Shard, ShardWrite[]>();
    const flush = async (through: Position): Promise<void> => {
      for (const [shard, writes] of pending) {
        // Removed meanwhile (placement moved, DROP): it is closed once this batch settles.
        if (shard.retired) continue;
        await shard.apply(writes, through);
        if (shard.retired) continue;
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
    let created = false;
    for (const s of ddl.shards) {
      if (!this.placedHere(ddl, s)) continue;
      const key = shardKey(collection, s);
      const incoming = { uid: ddl.uid, createdOffset: offset };
      const existing = this.shards.get(key);
      // Re-delivered after a restart (the same entry made it: a replica registered before
      // uids were kept has none), or bootstrapped ahead of the follower; or another
      // incarnation that wins over this entry's (an old CREATE replayed after a lost disk).
      if (existing && (existing.uid === ddl.uid || existing.store.identity.createdOffset === offset || this.prefers(collection, { uid: existing.uid, createdOffset: existing.store.identity.createdOffset }, incoming))) continue;
      const b = this.bootstraps.get(key);
      if (b && b.task.uid === ddl.uid) {
        // Nearly there: let it finish rather than start over from the entry.
        if (b.state === "catching_up") continue;
        // Still copying: replaying from the CREATE is the cheaper way (and the one the entry asks for).
        this.cancelBootstrap(collection, s, "the partition follower reached the collection's CREATE entry");
      } else if (b) {
        const theirs = { uid: b.task.uid, createdOffset: b.replica?.store.identity.createdOffset ?? Number.MAX_SAFE_INTEGER };
        if (this.prefers(collection, theirs, incoming)) continue;
        this.cancelBootstrap(collection, s, `the partition follower reached the CREATE entry of incarnation ${ddl.uid} at offset ${offset}, which wins`);
      }
      this.creating.add(key);
      let shard: Shard;
      try {
        shard = await this.newReplica(collection, s, partition, offset, ddl.uid, spec, this.replicaDir(collection, offset, s));
      } finally {
        this.creating.delete(key);
      }
      if (!this.adopt(shard, ddl.spec)) {
        // A bootstrap of a winning incarnation finished during the await above.
        shard.close();
        this.removeReplicaDir(shard.store.dir);
        continue;
      }
      created = true;
      this.opts.logger.info("shard created", { collection, shard: s, partition, offset, uid: ddl.uid });
    }
    if (created) for (const fn of this.createdListeners) fn();
  }

  /**
   * Which of two incarnations of one shard this node keeps: the one the catalog places
   * (when known), else the one with the newer CREATE entry. True when `a` wins.
   */
  private prefers(collection: string, a: { uid: string; createdOffset: number }, b: { uid: string; createdOffset: number }): boolean {
    const placed = this.placedUid(collection);
    if (placed !== undefined && a.uid !== b.uid) {
      if (a.uid === placed) return true;
      if (b.uid === placed) return false;
    }
    return a.createdOffset >= b.createdOffset;
  }

  /**
   * Makes `s` the served replica of its key, synchronously (register, serve), unless one
   * is served already that wins (same incarnation, or see prefers): then false, and the
   * caller discards `s`. A replica `s` wins over is retired.
   */
  private adopt(s: Shard, specBytes: Uint8Array): boolean {
    const existing = this.shards.get(s.key);
    if (existing) {
      const keep = existing.uid === s.uid || this.prefers(s.collection, { uid: existing.uid, createdOffset: existing.store.identity.createdOffset }, { uid: s.uid, createdOffset: s.store.identity.createdOffset });
      this.opts.logger.warn("two replicas of one shard met on this node", {
        collection: s.collection,
        shard: s.shard,
        kept: keep ? existing.uid : s.uid,
        discarded: keep ? s.uid : existing.uid,
      });
      if (keep) return false;
    }
    this.register(s, specBytes);
    this.shards.set(s.key, s);
    if (existing) this.retire(existing);
    return true;
  }

  private dropShards(partition: number, ddl: DdlPayload): void {
    for (const s of [...this.shards.values()]) {
      if (s.collection !== ddl.collection || s.partition !== partition) continue;
      // A replica of a newer incarnation (bootstrapped ahead of this follower) stays.
      if (ddl.uid && s.uid && ddl.uid !== s.uid) continue;
      this.retire(s);
      this.opts.logger.info("shard dropped", { collection: ddl.collection, shard: s.shard, partition });
    }
    for (const b of [...this.bootstraps.values()]) {
      if (b.task.collection !== ddl.collection || b.task.partition !== partition) continue;
      if (ddl.uid && ddl.uid !== b.task.uid) continue;
      this.cancelBootstrap(b.task.collection, b.task.shard, "the collection was dropped");
    }
  }

  /**
   * Takes a replica out of service at once (no read or batch picks it up any more) and
   * closes and deletes it once nothing uses it: after the partition follower's batch in
   * flight settled (flush skips retired replicas) and the snapshots being served of it
   * ended. A read that waited meanwhile answers NOT_FOUND ("moved off this node").
   */
  private retire(s: Shard): void {
    if (s.retired) return;
    s.retired = true;
    if (this.shards.get(s.key) === s) {
      this.shards.delete(s.key);
      this.writesSinceCheckpoint.delete(s.key);
    }
    // Only its own row: a replica that replaced it has registered under the same key.
    this.registry.prepare("DELETE FROM shards WHERE collection = ? AND shard = ? AND dir = ?").run(s.collection, s.shard, s.store.dir);
    const applying = this.followers.get(s.partition)?.applying;
    const done: Promise<void> = (async () => {
      await applying?.catch(() => undefined);
      await s.idle();
      s.close();
      this.removeReplicaDir(s.store.dir);
    })()
      .catch((err: unknown) => this.opts.logger.warn("closing a removed shard replica failed", { collection: s.collection, shard: s.shard, err }))
      .finally(() => this.retiring.delete(done));
    this.retiring.add(done);
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
   * only its own entries from a subscription of its own, then makes it serve (true; false
   * when a winning replica of the shard was served meanwhile). Without a replica (no
   * snapshot) it first looks for the collection's CREATE entry (by uid), and fails once
   * it passed the partition's end without finding it.
   */
  private async catchUp(f: Follower, b: Bootstrap, from: number, signal: AbortSignal, log: Logger): Promise<boolean> {
    const { collection, shard, uid, partition } = b.task;
    let pos: Position = b.replica ? { offset: b.replica.store.appliedOffset, ts: b.replica.store.appliedTs } : { offset: from - 1, ts: 0n };
    let applied = 0;
    let lastLogged = 0;
    let delays = resubscribeDelays();
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
        if (!this.install(b, b.replica, pos)) {
          log.info("a winning replica of the shard is served here already; discarding the bootstrapped copy");
          return false;
        }
        log.info("shard replica serving", { source: b.source, appliedOffset: pos.offset, catchUpEntries: applied });
        return true;
      }
      let failure: unknown;
      try {
        const stream = this.opts.journal.subscribe(
          { partition, fromOffset: BigInt(pos.offset + 1), maxBatchEntries: this.opts.subscribeBatchEntries, rawPayloads: true },
          { signal },
        );
        for await (const msg of stream) {
          delays = resubscribeDelays();
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
          const end = Math.max(f.position.offset, Number(msg.commitOffset));
          if (!b.replica && pos.offset >= end) {
            // Never finding it would hold this bootstrap (and the ones queued behind it)
            // forever. A legacy CREATE without a uid is not taken for it: it may be of
            // another incarnation of the name.
            throw new FailedPreconditionError(
              `rebuilding shard ${shard} of ${collection} from the journal: partition ${partition} holds no CREATE entry of incarnation ${uid} through offset ${pos.offset} ` +
                `(the partition's end); it may have been written without a uid or truncated away`,
            );
          }
          if (b.replica && pos.offset >= f.position.offset) break;
        }
      } catch (e) {
        if (signal.aborted || e instanceof BootstrapCancelled || e instanceof FailedPreconditionError) throw e;
        failure = e;
      }
      if (b.replica && pos.offset >= f.position.offset) continue;
      // Backoff on every resubscribe, also after a stream that ended cleanly.
      const wait = delays.next().value ?? 2000;
      log.warn(failure === undefined ? "catch-up subscription ended; resubscribing" : "catch-up subscription failed; resubscribing", { err: failure, retryInMs: wait, nextOffset: pos.offset + 1 });
      await abortableSleep(wait, signal);
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

  /**
   * Synchronous on purpose (see catchUp): register, serve, stop being a bootstrap. False
   * when a winning replica is served already (the bootstrap then removes its copy).
   */
  private install(b: Bootstrap, replica: Shard, pos: Position): boolean {
    if (b.abort.signal.aborted || this.stop.signal.aborted) throw new BootstrapCancelled(b.cancelled ?? "the node is closing");
    replica.store.apply([], pos);
    const adopted = this.adopt(replica, b.specBytes ?? new Uint8Array(0));
    this.bootstraps.delete(b.key);
    return adopted;
  }

  /** Opens a replica and restores its index; `signal` stops a long restore (the store is closed then). */
  private async loadShard(collection: string, shard: number, partition: number, uid: string, spec: ShardSpec, dir: string, signal?: AbortSignal): Promise<Shard> {
    const store = ShardStore.open(join(dir, "shard.sqlite"));
    const index = new VectorIndex(spec.params);
    const key = shardKey(collection, shard);
    let lastLogged = 0;
    let how: Awaited<ReturnType<VectorIndex["restore"]>>;
    try {
      store.ensureFieldIndexes(indexedFieldExpressions(spec.collection));
      this.restoring.set(key, 0);
      how = await index.restore(
        join(dir, "index.usearch"),
        store,
        (done) => {
          this.restoring.set(key, done);
          if (done - lastLogged >= 10_000) {
            lastLogged = done;
            this.opts.logger.info("restoring shard index", { collection, shard, rowsReplayed: done, records: store.liveRecords });
          }
        },
        signal,
      );
    } catch (e) {
      store.close();
      throw e;
    } finally {
      this.restoring.delete(key);
    }
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
