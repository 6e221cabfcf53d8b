// One shard replica's rows in SQLite: records (id, vector, metadata, the ts and offset of
// the entry that wrote them) and the partition offset the shard has applied. Rows and
// the applied offset change in the same transaction, so replaying the journal is
// exactly-once in effect: an entry at or below the applied offset is skipped.
//
// The usearch key of a record is its SQLite rowid (`key`), stable across updates.
import { dirname } from "node:path";
import Database from "better-sqlite3";

export interface StoredRow {
  readonly key: bigint;
  readonly id: string;
  readonly vector: Float32Array;
  readonly metadataJson: string;
  readonly ts: bigint;
  readonly offset: number;
}

/** One journal entry's effect on this shard. */
export interface ShardWrite {
  readonly offset: number;
  readonly ts: bigint;
  readonly upserts: readonly { id: string; vector: Float32Array; metadataJson: string }[];
  readonly deletes: readonly string[];
}

/** What the vector index must do after a batch commits. */
export type IndexOp = { readonly kind: "add"; readonly key: bigint; readonly vector: Float32Array } | { readonly kind: "remove"; readonly key: bigint };

export interface ShardIdentity {
  readonly collection: string;
  readonly shard: number;
  readonly partition: number;
  /** The offset of the DDL entry that created the collection (its incarnation). */
  readonly createdOffset: number;
  /** The collection spec as JSON (dimension, metric, hnsw, fields). */
  readonly specJson: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS records (
  key      INTEGER PRIMARY KEY,
  id       TEXT NOT NULL UNIQUE,
  vector   BLOB,
  metadata TEXT NOT NULL DEFAULT '{}',
  ts       INTEGER NOT NULL,
  offset   INTEGER NOT NULL,
  deleted  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS records_by_offset ON records (offset);
CREATE TABLE IF NOT EXISTS applied (
  one       INTEGER PRIMARY KEY CHECK (one = 1),
  offset    INTEGER NOT NULL,
  ts        INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS identity (
  one           INTEGER PRIMARY KEY CHECK (one = 1),
  collection    TEXT NOT NULL,
  shard         INTEGER NOT NULL,
  partition     INTEGER NOT NULL,
  created_offset INTEGER NOT NULL,
  spec          TEXT NOT NULL
);
`;

interface RawRow {
  key: bigint;
  id: string;
  vector: Buffer | null;
  metadata: string;
  ts: bigint;
  offset: bigint;
}

function toFloat32(blob: Buffer | null): Float32Array {
  if (!blob) return new Float32Array(0);
  // Copy: the Buffer may be a view into memory SQLite reuses, and usearch mishandles views.
  const out = new Float32Array(blob.length / 4);
  new Uint8Array(out.buffer).set(blob);
  return out;
}

function toRow(r: RawRow): StoredRow {
  return { key: r.key, id: r.id, vector: toFloat32(r.vector), metadataJson: r.metadata, ts: r.ts, offset: Number(r.offset) };
}

export class ShardStore {
  private readonly db: Database.Database;
  private readonly stmts;
  appliedOffset: number;
  appliedTs: bigint;
  private live: number;
  readonly identity: ShardIdentity;
  /** The directory holding the store (and the index checkpoint beside it). */
  readonly dir: string;

  private constructor(path: string, identity: ShardIdentity | undefined) {
    this.dir = dirname(path);
    this.db = new Database(path);
    // Derived state, replayable from the journal: a power loss may drop the last
    // transactions, and the applied offset rolls back with them.
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.exec(SCHEMA);
    this.db.defaultSafeIntegers(true);
    this.stmts = {
      byId: this.db.prepare<[string], { key: bigint; offset: bigint; deleted: bigint }>("SELECT key, offset, deleted FROM records WHERE id = ?"),
      insert: this.db.prepare<[string, Buffer, string, bigint, number]>("INSERT INTO records (id, vector, metadata, ts, offset, deleted) VALUES (?, ?, ?, ?, ?, 0)"),
      update: this.db.prepare<[Buffer, string, bigint, number, bigint]>("UPDATE records SET vector = ?, metadata = ?, ts = ?, offset = ?, deleted = 0 WHERE key = ?"),
      tombstone: this.db.prepare<[bigint, number, bigint]>("UPDATE records SET vector = NULL, metadata = '{}', ts = ?, offset = ?, deleted = 1 WHERE key = ?"),
      setApplied: this.db.prepare<[number, bigint]>("INSERT INTO applied (one, offset, ts) VALUES (1, ?, ?) ON CONFLICT (one) DO UPDATE SET offset = excluded.offset, ts = excluded.ts"),
      getApplied: this.db.prepare<[], { offset: bigint; ts: bigint }>("SELECT offset, ts FROM applied WHERE one = 1"),
      getIdentity: this.db.prepare<[], { collection: string; shard: bigint; partition: bigint; created_offset: bigint; spec: string }>(
        "SELECT collection, shard, partition, created_offset, spec FROM identity WHERE one = 1",
      ),
      setIdentity: this.db.prepare<[string, number, number, number, string]>(
        "INSERT INTO identity (one, collection, shard, partition, created_offset, spec) VALUES (1, ?, ?, ?, ?, ?)",
      ),
      liveCount: this.db.prepare<[], { n: bigint }>("SELECT count(*) AS n FROM records WHERE deleted = 0"),
      getByIds: this.db.prepare<[string], RawRow>("SELECT key, id, vector, metadata, ts, offset FROM records WHERE deleted = 0 AND id IN (SELECT value FROM json_each(?))"),
      getByKeys: this.db.prepare<[string], RawRow>("SELECT key, id, vector, metadata, ts, offset FROM records WHERE deleted = 0 AND key IN (SELECT value FROM json_each(?))"),
      changedSince: this.db.prepare<[number, bigint, number], RawRow & { deleted: bigint }>(
        "SELECT key, id, vector, metadata, ts, offset, deleted FROM records WHERE offset > ? AND key > ? ORDER BY key LIMIT ?",
      ),
    };
    const existing = this.stmts.getIdentity.get();
    if (existing) {
      this.identity = {
        collection: existing.collection,
        shard: Number(existing.shard),
        partition: Number(existing.partition),
        createdOffset: Number(existing.created_offset),
        specJson: existing.spec,
      };
    } else {
      if (!identity) throw new Error(`${path} is not a shard store`);
      this.stmts.setIdentity.run(identity.collection, identity.shard, identity.partition, identity.createdOffset, identity.specJson);
      this.stmts.setApplied.run(identity.createdOffset, 0n);
      this.identity = identity;
    }
    this.live = Number((this.stmts.liveCount.get() as { n: bigint }).n);
    const applied = this.stmts.getApplied.get();
    this.appliedOffset = applied ? Number(applied.offset) : 0;
    this.appliedTs = applied?.ts ?? 0n;
  }

  /** Opens an existing store, or creates it with `identity`. */
  static open(path: string, identity?: ShardIdentity): ShardStore {
    return new ShardStore(path, identity);
  }

  /**
   * Live records, counted once at open and then kept by apply(): metrics scrapes and
   * status calls must not scan a table of vectors on the event loop.
   */
  get liveRecords(): number {
    return this.live;
  }

  /**
   * Applies journal entries for this shard in one transaction, skipping any at or below
   * the applied offset, and records `through` as the new applied position. Returns the
   * index operations to perform once the transaction has committed.
   */
  apply(writes: readonly ShardWrite[], through: { offset: number; ts: bigint }): IndexOp[] {
    const ops: IndexOp[] = [];
    if (through.offset <= this.appliedOffset) return ops;
    let live = this.live;
    this.db.transaction(() => {
      for (const w of writes) {
        if (w.offset <= this.appliedOffset) continue;
        for (const u of w.upserts) {
          const blob = Buffer.from(u.vector.buffer, u.vector.byteOffset, u.vector.byteLength);
          const row = this.stmts.byId.get(u.id);
          if (row) {
            this.stmts.update.run(blob, u.metadataJson, w.ts, w.offset, row.key);
            if (row.deleted === 0n) ops.push({ kind: "remove", key: row.key });
            else live++;
            ops.push({ kind: "add", key: row.key, vector: u.vector });
          } else {
            const info = this.stmts.insert.run(u.id, blob, u.metadataJson, w.ts, w.offset);
            ops.push({ kind: "add", key: BigInt(info.lastInsertRowid), vector: u.vector });
            live++;
          }
        }
        for (const id of w.deletes) {
          const row = this.stmts.byId.get(id);
          if (row && row.deleted === 0n) {
            this.stmts.tombstone.run(w.ts, w.offset, row.key);
            ops.push({ kind: "remove", key: row.key });
            live--;
          }
        }
      }
      this.stmts.setApplied.run(through.offset, through.ts);
    })();
    // Only once the transaction committed (a throw above leaves the count as it was).
    this.live = live;
    this.appliedOffset = through.offset;
    this.appliedTs = through.ts;
    return ops;
  }

  /** Live records by id (missing ids are left out), in no particular order. */
  getByIds(ids: readonly string[]): StoredRow[] {
    return this.stmts.getByIds.all(JSON.stringify(ids)).map(toRow);
  }

  /** Live records by usearch key. */
  getByKeys(keys: readonly bigint[]): StoredRow[] {
    return this.stmts.getByKeys.all(JSON.stringify(keys.map((k) => Number(k)))).map(toRow);
  }

  /**
   * Rows written after `offset` (live or deleted), by key, a page at a time: what an
   * index checkpoint covering `offset` is missing.
   */
  changedSince(offset: number, afterKey: bigint, limit: number): (StoredRow & { deleted: boolean })[] {
    return this.stmts.changedSince.all(offset, afterKey, limit).map((r) => ({ ...toRow(r), deleted: r.deleted !== 0n }));
  }

  /** Number of live rows matching a compiled filter, counting at most `cap + 1`. */
  countMatching(where: string, params: readonly unknown[], cap: number): number {
    const row = this.db.prepare<unknown[], { n: bigint }>(`SELECT count(*) AS n FROM (SELECT 1 FROM records WHERE deleted = 0 AND (${where}) LIMIT ?)`).get(...params, cap + 1);
    return Number(row?.n ?? 0);
  }

  /** Live rows matching a compiled filter (all of them: call after countMatching). */
  matching(where: string, params: readonly unknown[]): StoredRow[] {
    return this.db
      .prepare<unknown[], RawRow>(`SELECT key, id, vector, metadata, ts, offset FROM records WHERE deleted = 0 AND (${where})`)
      .all(...params)
      .map(toRow);
  }

  /** The subset of `keys` whose rows match a compiled filter. */
  keysMatching(keys: readonly bigint[], where: string, params: readonly unknown[]): Set<bigint> {
    const rows = this.db
      .prepare<unknown[], { key: bigint }>(`SELECT key FROM records WHERE deleted = 0 AND key IN (SELECT value FROM json_each(?)) AND (${where})`)
      .all(JSON.stringify(keys.map((k) => Number(k))), ...params);
    return new Set(rows.map((r) => r.key));
  }

  /** Live rows matching a filter with id > afterId, in id order. */
  page(where: string, params: readonly unknown[], afterId: string, limit: number): StoredRow[] {
    return this.db
      .prepare<unknown[], RawRow>(`SELECT key, id, vector, metadata, ts, offset FROM records WHERE deleted = 0 AND id > ? AND (${where}) ORDER BY id LIMIT ?`)
      .all(afterId, ...params, limit)
      .map(toRow);
  }

  /**
   * Creates expression indexes for the schema's indexed fields (idempotent). The
   * expressions must be exactly the ones the filter compiler emits, or SQLite won't use them.
   */
  ensureFieldIndexes(fields: readonly { name: string; expression: string }[]): void {
    for (const f of fields) {
      if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(f.name)) continue;
      this.db.exec(`CREATE INDEX IF NOT EXISTS field_${f.name} ON records (${f.expression}) WHERE deleted = 0`);
    }
  }

  /**
   * A consistent copy of the store at `path` (SQLite's online backup, run in steps on
   * this connection, so writes made meanwhile through it are carried into the copy),
   * turned into a single self-contained file; returns the position the copy has applied.
   */
  async backup(path: string): Promise<{ offset: number; ts: bigint }> {
    await this.db.backup(path);
    return ShardStore.sealCopy(path);
  }

  /** Makes a copied store one file (rollback journal, not WAL) and reads its applied position. */
  static sealCopy(path: string): { offset: number; ts: bigint } {
    const db = new Database(path);
    try {
      db.defaultSafeIntegers(true);
      db.pragma("journal_mode = DELETE");
      const row = db.prepare<[], { offset: bigint; ts: bigint }>("SELECT offset, ts FROM applied WHERE one = 1").get();
      if (!row) throw new Error(`${path} has no applied position: not a shard store`);
      return { offset: Number(row.offset), ts: row.ts };
    } finally {
      db.close();
    }
  }

  close(): void {
    this.db.close();
  }
}
