// A storage node: the shard replicas it hosts, one journal subscription per partition it
// follows, and the per-partition watermark (offset and ts of the last entry applied to
// every hosted shard of that partition) that reads wait on.
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import { fromBinary } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { abortableSleep, backoffDelays, DeadlineExceededError, NotFoundError, type Logger } from "@vecraft/common";
import { CollectionSchema, DataPayloadSchema, DdlOp, DdlPayloadSchema, EntryType, type DataPayload, type DdlPayload, type JournalEntry, type JournalService } from "@vecraft/rpc";
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

export interface StorageNodeOptions {
  readonly dataDir: string;
  readonly nodeId: string;
  /** The journal partitions this node follows. */
  readonly partitions: readonly number[];
  readonly journal: Client<typeof JournalService>;
  readonly logger: Logger;
  /** Whether this node hosts a replica of (collection, shard); standalone hosts all. */
  readonly hosts: (collection: string, shard: number, partition: number) => boolean;
  readonly exactThreshold: number;
  /** Checkpoint a shard's index after this many applied entries changed it. */
  readonly checkpointEveryWrites: number;
  readonly subscribeBatchEntries: number;
}

const REGISTRY = `
CREATE TABLE IF NOT EXISTS shards (
  collection     TEXT NOT NULL,
  shard          INTEGER NOT NULL,
  partition      INTEGER NOT NULL,
  created_offset INTEGER NOT NULL,
  spec           BLOB NOT NULL,
  dir            TEXT NOT NULL,
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
}

export class StorageNode {
  private readonly shards = new Map<string, Shard>();
  private readonly followers = new Map<number, Follower>();
  private readonly writesSinceCheckpoint = new Map<string, number>();
  /** Shards whose index is being restored, and how many rows have been replayed so far. */
  private readonly restoring = new Map<string, number>();
  private readonly stop = new AbortController();
  private loops: Promise<void>[] = [];
  private readonly registry: Database.Database;
  private isStarted = false;

  private constructor(private readonly opts: StorageNodeOptions) {
    mkdirSync(join(opts.dataDir, "storage"), { recursive: true });
    this.registry = new Database(join(opts.dataDir, "storage", "node.sqlite"));
    this.registry.pragma("journal_mode = WAL");
    // Derived state: losing the last cursor update only means re-reading a few entries.
    this.registry.pragma("synchronous = NORMAL");
    this.registry.exec(REGISTRY);
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
    const rows = this.registry.prepare<[], { collection: string; shard: bigint; partition: bigint; spec: Buffer; dir: string }>("SELECT * FROM shards").all();
    for (const r of rows) {
      if (this.stop.signal.aborted) return;
      const spec = shardSpecFrom(fromBinary(CollectionSchema, r.spec));
      await this.openShard(r.collection, Number(r.shard), Number(r.partition), spec, r.dir);
    }
    for (const p of this.opts.partitions) {
      const c = this.registry.prepare<[number], { offset: bigint; ts: bigint }>("SELECT offset, ts FROM cursors WHERE partition = ?").get(p);
      const position = { offset: c ? Number(c.offset) : 0, ts: c?.ts ?? 0n };
      this.followers.set(p, { partition: p, position, persisted: position.offset, persistedAtMs: Date.now(), listeners: new Set() });
    }
    for (const f of this.followers.values()) this.loops.push(this.follow(f));
    this.isStarted = true;
  }

  get nodeId(): string {
    return this.opts.nodeId;
  }

  /** The hosted replica of (collection, shard), or NOT_FOUND. */
  shard(collection: string, shard: number): Shard {
    const s = this.shards.get(shardKey(collection, shard));
    if (!s) throw new NotFoundError(`shard ${shard} of collection ${collection} is not hosted on storage node ${this.opts.nodeId}`);
    return s;
  }

  hostedShards(): Shard[] {
    return [...this.shards.values()];
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

  async close(): Promise<void> {
    this.stop.abort();
    await Promise.allSettled(this.loops);
    for (const f of this.followers.values()) this.persistCursor(f, true);
    for (const s of this.shards.values()) {
      this.checkpoint(s);
      s.close();
    }
    this.shards.clear();
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
          if (msg.entries.length > 0) await this.applyEntries(f, msg.entries);
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
        if (ddl.op === DdlOp.CREATE_COLLECTION) await this.createShards(f.partition, offset, ddl.collection, ddl.shards, ddl.spec);
        else if (ddl.op === DdlOp.DROP_COLLECTION) this.dropShards(f.partition, ddl.collection);
      } else if (payload?.case === "data") {
        const d = payload.value;
        const shard = this.shards.get(shardKey(d.collection, d.shard));
        if (shard && shard.partition === f.partition && offset > shard.store.appliedOffset) {
          const list = pending.get(shard) ?? [];
          list.push({
            offset,
            ts: e.ts,
            upserts: d.upserts.map((u) => ({ id: u.id, vector: toVector(u.vectorF32), metadataJson: u.metadataJson || "{}" })),
            deletes: d.deleteIds,
          });
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

  private async createShards(partition: number, offset: number, collection: string, shards: readonly number[], specBytes: Uint8Array): Promise<void> {
    const spec = shardSpecFrom(fromBinary(CollectionSchema, specBytes));
    for (const s of shards) {
      if (!this.opts.hosts(collection, s, partition)) continue;
      const existing = this.shards.get(shardKey(collection, s));
      if (existing) continue; // re-delivered after a restart
      const dir = join(this.opts.dataDir, "storage", `${collection}.${offset}`, `shard-${s}`);
      mkdirSync(dir, { recursive: true });
      ShardStore.open(join(dir, "shard.sqlite"), { collection, shard: s, partition, createdOffset: offset, specJson: JSON.stringify(spec.params) }).close();
      this.registry
        .prepare("INSERT OR REPLACE INTO shards (collection, shard, partition, created_offset, spec, dir) VALUES (?, ?, ?, ?, ?, ?)")
        .run(collection, s, partition, offset, Buffer.from(specBytes), dir);
      await this.openShard(collection, s, partition, spec, dir);
      this.opts.logger.info("shard created", { collection, shard: s, partition, offset });
    }
  }

  private dropShards(partition: number, collection: string): void {
    for (const s of [...this.shards.values()]) {
      if (s.collection !== collection || s.partition !== partition) continue;
      s.close();
      this.shards.delete(s.key);
      this.registry.prepare("DELETE FROM shards WHERE collection = ? AND shard = ?").run(collection, s.shard);
      rmSync(s.store.dir, { recursive: true, force: true });
      // The collection directory goes with its last shard.
      const parent = dirname(s.store.dir);
      if (readdirSync(parent).length === 0) rmSync(parent, { recursive: true, force: true });
      this.opts.logger.info("shard dropped", { collection, shard: s.shard, partition });
    }
  }

  private async openShard(collection: string, shard: number, partition: number, spec: ShardSpec, dir: string): Promise<void> {
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
    this.shards.set(shardKey(collection, shard), new Shard(collection, shard, partition, spec, store, index, { exactThreshold: this.opts.exactThreshold }));
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
