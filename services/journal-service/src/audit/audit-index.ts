// The audit index: a SQLite file beside the segments that answers "every version of
// record X", "what did request R write" and "operations by principal or collection in a
// time range". It is derived state, fed from committed entries only and never on the
// write path; when it is lost or behind, it is rebuilt from the log.
import { rmSync } from "node:fs";
import Database from "better-sqlite3";
import { InvalidArgumentError } from "@vecraft/common";
import type { CommittedEntry } from "../partition.js";

export interface EntryRow {
  readonly partition: number;
  readonly offset: number;
  readonly ts: bigint;
  readonly type: number;
  readonly collection: string;
  readonly requestId: string;
  readonly principal: string;
  readonly upserts: number;
  readonly deletes: number;
}

export interface VersionRow {
  readonly partition: number;
  readonly offset: number;
  readonly ts: bigint;
  readonly op: "upsert" | "delete";
}

export interface ListFilter {
  readonly collection?: string;
  readonly principal?: string;
  readonly fromTs: bigint;
  readonly toTs?: bigint;
  readonly limit: number;
  readonly after?: { ts: bigint; partition: number; offset: number };
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS indexed (
  partition INTEGER PRIMARY KEY,
  offset    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
  partition  INTEGER NOT NULL,
  offset     INTEGER NOT NULL,
  ts         INTEGER NOT NULL,
  type       INTEGER NOT NULL,
  collection TEXT NOT NULL,
  request_id TEXT NOT NULL,
  principal  TEXT NOT NULL,
  upserts    INTEGER NOT NULL,
  deletes    INTEGER NOT NULL,
  PRIMARY KEY (partition, offset)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_ts ON entries (ts, partition, offset);
CREATE INDEX IF NOT EXISTS entries_by_request ON entries (request_id) WHERE request_id != '';
CREATE INDEX IF NOT EXISTS entries_by_principal ON entries (principal, ts, partition, offset);
CREATE INDEX IF NOT EXISTS entries_by_collection ON entries (collection, ts, partition, offset);
CREATE TABLE IF NOT EXISTS versions (
  collection TEXT NOT NULL,
  record_id  TEXT NOT NULL,
  ts         INTEGER NOT NULL,
  partition  INTEGER NOT NULL,
  offset     INTEGER NOT NULL,
  op         INTEGER NOT NULL,
  PRIMARY KEY (collection, record_id, ts, partition, offset)
) WITHOUT ROWID;
`;

const OP_UPSERT = 1;
const OP_DELETE = 2;

interface RawEntryRow {
  partition: bigint;
  offset: bigint;
  ts: bigint;
  type: bigint;
  collection: string;
  request_id: string;
  principal: string;
  upserts: bigint;
  deletes: bigint;
}

export class AuditIndex {
  private readonly db: Database.Database;
  private readonly stmts;

  private constructor(path: string) {
    this.db = new Database(path);
    // Derived state, rebuilt from the log after a crash: NORMAL durability is enough.
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.exec(SCHEMA);
    this.db.defaultSafeIntegers(true);
    this.stmts = {
      getIndexed: this.db.prepare<[number], { offset: bigint }>("SELECT offset FROM indexed WHERE partition = ?"),
      setIndexed: this.db.prepare("INSERT INTO indexed (partition, offset) VALUES (?, ?) ON CONFLICT (partition) DO UPDATE SET offset = excluded.offset"),
      insertEntry: this.db.prepare(
        "INSERT OR REPLACE INTO entries (partition, offset, ts, type, collection, request_id, principal, upserts, deletes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      ),
      insertVersion: this.db.prepare("INSERT OR REPLACE INTO versions (collection, record_id, ts, partition, offset, op) VALUES (?, ?, ?, ?, ?, ?)"),
      history: this.db.prepare<[string, string, number], { partition: bigint; offset: bigint; ts: bigint; op: bigint }>(
        "SELECT partition, offset, ts, op FROM versions WHERE collection = ? AND record_id = ? ORDER BY ts, partition, offset LIMIT ?",
      ),
      byRequest: this.db.prepare<[string], RawEntryRow>("SELECT * FROM entries WHERE request_id = ? ORDER BY ts, partition, offset"),
      deleteEntries: this.db.prepare("DELETE FROM entries WHERE partition = ?"),
      deleteVersions: this.db.prepare("DELETE FROM versions WHERE partition = ?"),
    };
  }

  /** Opens the index; a file SQLite cannot read is replaced by an empty one (rebuilt later). */
  static open(path: string, onReset: (reason: string) => void): AuditIndex {
    let idx: AuditIndex | undefined;
    try {
      idx = new AuditIndex(path);
      const check = idx.db.pragma("quick_check", { simple: true });
      if (check !== "ok") throw new Error(`quick_check: ${String(check)}`);
      return idx;
    } catch (e) {
      onReset(e instanceof Error ? e.message : String(e));
      try {
        idx?.close();
      } catch {
        // The file is being thrown away; a failing close changes nothing.
      }
      for (const suffix of ["", "-wal", "-shm"]) rmSync(path + suffix, { force: true });
      return new AuditIndex(path);
    }
  }

  indexedOffset(partition: number): number {
    const row = this.stmts.getIndexed.get(partition);
    return row ? Number(row.offset) : 0;
  }

  /** Forgets a partition (its log was replaced or is shorter than the index). */
  resetPartition(partition: number): void {
    this.db.transaction(() => {
      this.stmts.deleteEntries.run(partition);
      this.stmts.deleteVersions.run(partition);
      this.stmts.setIndexed.run(partition, 0);
    })();
  }

  /** Indexes consecutive committed entries of one partition in one transaction. */
  index(partition: number, entries: readonly CommittedEntry[]): void {
    if (entries.length === 0) return;
    const last = entries[entries.length - 1] as CommittedEntry;
    this.db.transaction(() => {
      for (const e of entries) {
        const { record, payload } = e;
        if (!payload) continue;
        const ts = record.ts;
        if (payload.case === "data") {
          const d = payload.value;
          this.stmts.insertEntry.run(partition, record.offset, ts, record.type, d.collection, d.requestId, d.principal, d.upserts.length, d.deleteIds.length);
          for (const u of d.upserts) this.stmts.insertVersion.run(d.collection, u.id, ts, partition, record.offset, OP_UPSERT);
          for (const id of d.deleteIds) this.stmts.insertVersion.run(d.collection, id, ts, partition, record.offset, OP_DELETE);
        } else {
          const d = payload.value;
          this.stmts.insertEntry.run(partition, record.offset, ts, record.type, d.collection, d.requestId, d.principal, 0, 0);
        }
      }
      this.stmts.setIndexed.run(partition, last.record.offset);
    })();
  }

  recordHistory(collection: string, id: string, limit: number): VersionRow[] {
    return this.stmts.history.all(collection, id, limit).map((r) => ({
      partition: Number(r.partition),
      offset: Number(r.offset),
      ts: r.ts,
      op: Number(r.op) === OP_DELETE ? "delete" : "upsert",
    }));
  }

  requestEntries(requestId: string): EntryRow[] {
    return this.stmts.byRequest.all(requestId).map(toEntryRow);
  }

  /** Entries in global (ts, partition, offset) order after `filter.after`. */
  list(filter: ListFilter): EntryRow[] {
    const where: string[] = ["ts >= ?"];
    const params: (string | number | bigint)[] = [filter.fromTs];
    if (filter.toTs !== undefined) {
      where.push("ts <= ?");
      params.push(filter.toTs);
    }
    if (filter.collection) {
      where.push("collection = ?");
      params.push(filter.collection);
    }
    if (filter.principal) {
      where.push("principal = ?");
      params.push(filter.principal);
    }
    if (filter.after) {
      where.push("(ts, partition, offset) > (?, ?, ?)");
      params.push(filter.after.ts, filter.after.partition, filter.after.offset);
    }
    params.push(filter.limit);
    const sql = `SELECT * FROM entries WHERE ${where.join(" AND ")} ORDER BY ts, partition, offset LIMIT ?`;
    return this.db
      .prepare<unknown[], RawEntryRow>(sql)
      .all(...params)
      .map(toEntryRow);
  }

  close(): void {
    this.db.close();
  }
}

function toEntryRow(r: RawEntryRow): EntryRow {
  return {
    partition: Number(r.partition),
    offset: Number(r.offset),
    ts: r.ts,
    type: Number(r.type),
    collection: r.collection,
    requestId: r.request_id,
    principal: r.principal,
    upserts: Number(r.upserts),
    deletes: Number(r.deletes),
  };
}

/** Page tokens are opaque to clients: base64url of the last row's position. */
export function encodePageToken(row: { ts: bigint; partition: number; offset: number }): string {
  return Buffer.from(`${row.ts}:${row.partition}:${row.offset}`, "utf8").toString("base64url");
}

export function decodePageToken(token: string): { ts: bigint; partition: number; offset: number } {
  const parts = Buffer.from(token, "base64url").toString("utf8").split(":");
  const [ts, partition, offset] = parts;
  if (parts.length !== 3 || !ts || !partition || !offset || !/^\d+$/.test(ts) || !/^\d+$/.test(partition) || !/^\d+$/.test(offset)) {
    throw new InvalidArgumentError("page_token is not a token this server returned");
  }
  return { ts: BigInt(ts), partition: Number(partition), offset: Number(offset) };
}
