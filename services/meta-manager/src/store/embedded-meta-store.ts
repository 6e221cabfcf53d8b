// The embedded MetaStore: one SQLite file owned by one process (standalone mode). It is
// the source of truth for the catalog, so every commit is durable before it returns
// (WAL, synchronous=FULL) and the file is locked against a second process.
//
// Layout:
//   meta(name, value)        'revision', 'compact_revision'
//   kv(key, value, create_revision, mod_revision, version, lease)
//   changes(revision, seq, key, value, create_revision, version, lease)   value NULL = delete
//   leases(id, ttl_ms, expires_at_ms)
//
// Watches read `changes` on demand, a bounded batch at a time, as the consumer pulls:
// there is no per-watch push buffer that could overflow. History older than
// `historyRevisions` is compacted; a watch that falls behind it fails with
// WatchCompactedError (the consumer re-reads and watches again).
//
// better-sqlite3 is synchronous: every method runs one short transaction and never holds
// one across an await (CONVENTIONS.md rule 9).
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { InvalidArgumentError, ResourceExhaustedError, UnavailableError, abortReason, type Logger } from "@vecraft/common";
import { systemClock, type Clock } from "./clock.js";
import {
  LeaseNotFoundError,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  WatchCompactedError,
  prefixEnd,
  type CallOptions,
  type KeyValue,
  type LeaseId,
  type MetaStore,
  type RangeOptions,
  type RangeResult,
  type TxnRequest,
  type TxnResult,
  type WatchEvent,
} from "./meta-store.js";

export interface EmbeddedMetaStoreOptions {
  /** The SQLite file; its directory is created if needed. */
  readonly path: string;
  /** Lease deadlines and expiry timers; default the system clock. */
  readonly clock?: Clock;
  /** Revisions of change history kept for watches (default 10 000). */
  readonly historyRevisions?: number;
  /** Concurrent watches allowed (default 1024); more fail with ResourceExhausted. */
  readonly maxWatches?: number;
  /** Change rows a watch reads per query (default 256). */
  readonly watchBatch?: number;
  /** How long opening waits for another holder of the file to let go (default 2 s). */
  readonly lockTimeoutMs?: number;
  /** Longest lease time to live accepted (default 1 hour). */
  readonly maxLeaseTtlMs?: number;
  readonly logger?: Logger;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
  key             BLOB PRIMARY KEY,
  value           BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision    INTEGER NOT NULL,
  version         INTEGER NOT NULL,
  lease           INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_by_lease ON kv (lease) WHERE lease IS NOT NULL;
CREATE TABLE IF NOT EXISTS changes (
  revision        INTEGER NOT NULL,
  seq             INTEGER NOT NULL,
  key             BLOB NOT NULL,
  value           BLOB,
  create_revision INTEGER,
  version         INTEGER,
  lease           INTEGER,
  PRIMARY KEY (revision, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  ttl_ms        INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases (expires_at_ms);
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('compact_revision', 0);
`;

interface KvRow {
  key: Buffer;
  value: Buffer;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease: number | null;
}

interface ChangeRow {
  revision: number;
  seq: number;
  key: Buffer;
  value: Buffer | null;
  create_revision: number | null;
  version: number | null;
  lease: number | null;
}

/** Leases expired per sweep; the next sweep follows at once if more are due. */
const EXPIRE_BATCH = 256;
const LEASE_ID = /^[1-9][0-9]{0,17}$/;

const utf8 = new TextDecoder("utf-8", { fatal: true });

function bytes(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function encodeKey(key: string, what = "key"): Buffer {
  if (typeof key !== "string" || key === "") throw new InvalidArgumentError(`${what}: must be a non-empty string`);
  const b = Buffer.from(key, "utf8");
  if (b.toString("utf8") !== key) throw new InvalidArgumentError(`${what}: not well-formed UTF-16 (lone surrogate)`);
  if (b.length > MAX_KEY_BYTES) throw new InvalidArgumentError(`${what}: ${b.length} bytes, at most ${MAX_KEY_BYTES} allowed`);
  return b;
}

/** Runs a synchronous store operation as the interface's promise (errors become rejections). */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
}

function toKv(r: KvRow): KeyValue {
  return {
    key: utf8.decode(r.key),
    value: bytes(r.value),
    createRevision: r.create_revision,
    modRevision: r.mod_revision,
    version: r.version,
    lease: r.lease === null ? undefined : String(r.lease),
  };
}

function toEvent(r: ChangeRow): WatchEvent {
  const key = utf8.decode(r.key);
  if (r.value === null) return { type: "delete", key, revision: r.revision };
  return {
    type: "put",
    kv: {
      key,
      value: bytes(r.value),
      createRevision: r.create_revision ?? r.revision,
      modRevision: r.revision,
      version: r.version ?? 1,
      lease: r.lease === null ? undefined : String(r.lease),
    },
  };
}

export class EmbeddedMetaStore implements MetaStore {
  private readonly db: Database.Database;
  private readonly clock: Clock;
  private readonly historyRevisions: number;
  private readonly maxWatches: number;
  private readonly watchBatch: number;
  private readonly maxLeaseTtlMs: number;
  private rev: number;
  private compactRev: number;
  private closed = false;
  private activeWatches = 0;
  /** One wake-up per watch waiting for a commit; bounded by maxWatches. */
  private readonly waiters = new Set<() => void>();
  private nextExpiryMs = Number.POSITIVE_INFINITY;
  private cancelTimer: (() => void) | undefined;
  private timerAtMs = Number.POSITIVE_INFINITY;

  private readonly stmt: {
    getMeta: Database.Statement<[string], { value: number }>;
    setMeta: Database.Statement<[number, string]>;
    getKv: Database.Statement<[Buffer], KvRow>;
    upsertKv: Database.Statement<[Buffer, Buffer, number, number, number, number | null]>;
    deleteKv: Database.Statement<[Buffer]>;
    insertChange: Database.Statement<[number, number, Buffer, Buffer | null, number | null, number | null, number | null]>;
    keysOfLease: Database.Statement<[number], { key: Buffer }>;
    getLease: Database.Statement<[number], { id: number; ttl_ms: number; expires_at_ms: number }>;
    insertLease: Database.Statement<[number, number]>;
    touchLease: Database.Statement<[number, number]>;
    deleteLease: Database.Statement<[number]>;
    dueLeases: Database.Statement<[number, number], { id: number }>;
    minExpiry: Database.Statement<[], { m: number | null }>;
    compact: Database.Statement<[number]>;
  };

  private constructor(private readonly opts: EmbeddedMetaStoreOptions) {
    this.clock = opts.clock ?? systemClock;
    this.historyRevisions = opts.historyRevisions ?? 10_000;
    this.maxWatches = opts.maxWatches ?? 1024;
    this.watchBatch = opts.watchBatch ?? 256;
    this.maxLeaseTtlMs = opts.maxLeaseTtlMs ?? 3_600_000;
    if (!Number.isSafeInteger(this.historyRevisions) || this.historyRevisions < 1) throw new RangeError("historyRevisions must be a positive integer");
    mkdirSync(dirname(opts.path), { recursive: true });
    this.db = new Database(opts.path, { timeout: opts.lockTimeoutMs ?? 2_000 });
    try {
      // One process owns the catalog file: a second opener fails instead of forking the
      // revision counter (the in-memory revision and watch wake-ups assume one writer).
      this.db.pragma("locking_mode = EXCLUSIVE");
      this.db.pragma("journal_mode = WAL");
      // The source of truth for the catalog: a commit is on disk before it is acknowledged.
      this.db.pragma("synchronous = FULL");
      this.db.exec(SCHEMA);
    } catch (e) {
      this.db.close();
      throw e;
    }
    this.stmt = {
      getMeta: this.db.prepare("SELECT value FROM meta WHERE name = ?"),
      setMeta: this.db.prepare("UPDATE meta SET value = ? WHERE name = ?"),
      getKv: this.db.prepare("SELECT * FROM kv WHERE key = ?"),
      upsertKv: this.db.prepare(
        "INSERT INTO kv (key, value, create_revision, mod_revision, version, lease) VALUES (?, ?, ?, ?, ?, ?) " +
          "ON CONFLICT (key) DO UPDATE SET value = excluded.value, create_revision = excluded.create_revision, " +
          "mod_revision = excluded.mod_revision, version = excluded.version, lease = excluded.lease",
      ),
      deleteKv: this.db.prepare("DELETE FROM kv WHERE key = ?"),
      insertChange: this.db.prepare("INSERT INTO changes (revision, seq, key, value, create_revision, version, lease) VALUES (?, ?, ?, ?, ?, ?, ?)"),
      keysOfLease: this.db.prepare("SELECT key FROM kv WHERE lease = ? ORDER BY key"),
      getLease: this.db.prepare("SELECT id, ttl_ms, expires_at_ms FROM leases WHERE id = ?"),
      insertLease: this.db.prepare("INSERT INTO leases (ttl_ms, expires_at_ms) VALUES (?, ?)"),
      touchLease: this.db.prepare("UPDATE leases SET expires_at_ms = ? WHERE id = ?"),
      deleteLease: this.db.prepare("DELETE FROM leases WHERE id = ?"),
      dueLeases: this.db.prepare("SELECT id FROM leases WHERE expires_at_ms <= ? ORDER BY expires_at_ms, id LIMIT ?"),
      minExpiry: this.db.prepare("SELECT MIN(expires_at_ms) AS m FROM leases"),
      compact: this.db.prepare("DELETE FROM changes WHERE revision <= ?"),
    };
    this.rev = this.meta("revision");
    this.compactRev = this.meta("compact_revision");
    // Like an etcd leader taking over, give every lease its full time to live again: the
    // holders could not reach us while the process was down, which is not their fault.
    this.db.prepare("UPDATE leases SET expires_at_ms = MAX(expires_at_ms, ? + ttl_ms)").run(this.clock.now());
    this.refreshExpiry();
  }

  /** Opens (or creates) the store file. Fails if another process holds it. */
  static open(options: EmbeddedMetaStoreOptions): EmbeddedMetaStore {
    return new EmbeddedMetaStore(options);
  }

  get path(): string {
    return this.opts.path;
  }

  /** The oldest revision a watch can no longer start from (changes up to it are compacted). */
  get compactRevision(): number {
    return this.compactRev;
  }

  // ---------------------------------------------------------------------------------
  // Reads and transactions

  get(key: string, _options?: CallOptions): Promise<KeyValue | undefined> {
    return settle(() => {
      this.begin();
      const row = this.stmt.getKv.get(encodeKey(key));
      return row === undefined ? undefined : toKv(row);
    });
  }

  range(prefix: string, options: RangeOptions = {}): Promise<RangeResult> {
    return settle(() => this.rangeSync(prefix, options));
  }

  private rangeSync(prefix: string, options: RangeOptions): RangeResult {
    this.begin();
    const limit = options.limit ?? 0;
    if (!Number.isSafeInteger(limit) || limit < 0) throw new InvalidArgumentError(`limit: ${limit} is not a non-negative integer`);
    const { cond, params } = this.prefixCondition(prefix);
    const rows = this.db
      .prepare<unknown[], KvRow>(`SELECT * FROM kv WHERE ${cond} ORDER BY key${limit > 0 ? " LIMIT ?" : ""}`)
      .all(...params, ...(limit > 0 ? [limit + 1] : []));
    const more = limit > 0 && rows.length > limit;
    return { kvs: (more ? rows.slice(0, limit) : rows).map(toKv), revision: this.rev, more };
  }

  txn(request: TxnRequest, _options?: CallOptions): Promise<TxnResult> {
    return settle(() => this.txnSync(request));
  }

  private txnSync(request: TxnRequest): TxnResult {
    this.begin();
    const compares = (request.compares ?? []).map((c, i) => {
      if (!Number.isSafeInteger(c.modRevision) || c.modRevision < 0) {
        throw new InvalidArgumentError(`compares[${i}].modRevision: ${c.modRevision} is not a non-negative integer`);
      }
      return { key: encodeKey(c.key, `compares[${i}].key`), modRevision: c.modRevision };
    });
    const seen = new Set<string>();
    const once = (key: string, what: string): void => {
      if (seen.has(key)) throw new InvalidArgumentError(`${what}: key ${JSON.stringify(key)} appears more than once in the transaction`);
      seen.add(key);
    };
    const puts = (request.puts ?? []).map((p, i) => {
      const key = encodeKey(p.key, `puts[${i}].key`);
      once(p.key, `puts[${i}]`);
      if (!(p.value instanceof Uint8Array)) throw new InvalidArgumentError(`puts[${i}].value: must be bytes`);
      if (p.value.byteLength > MAX_VALUE_BYTES) {
        throw new InvalidArgumentError(`puts[${i}].value: ${p.value.byteLength} bytes, at most ${MAX_VALUE_BYTES} allowed`);
      }
      return {
        key,
        value: Buffer.from(p.value.buffer, p.value.byteOffset, p.value.byteLength),
        lease: p.lease === undefined ? null : this.leaseNumber(p.lease),
      };
    });
    const deletes = (request.deletes ?? []).map((k, i) => {
      const key = encodeKey(k, `deletes[${i}]`);
      once(k, `deletes[${i}]`);
      return key;
    });
    const run = this.db.transaction((): TxnResult => {
      for (const c of compares) {
        const row = this.stmt.getKv.get(c.key);
        if ((row?.mod_revision ?? 0) !== c.modRevision) return { committed: false, revision: this.rev };
      }
      for (const p of puts) {
        if (p.lease !== null && this.stmt.getLease.get(p.lease) === undefined) throw new LeaseNotFoundError(String(p.lease));
      }
      const rev = this.rev + 1;
      let seq = 0;
      for (const p of puts) {
        const old = this.stmt.getKv.get(p.key);
        const createRevision = old?.create_revision ?? rev;
        const version = (old?.version ?? 0) + 1;
        this.stmt.upsertKv.run(p.key, p.value, createRevision, rev, version, p.lease);
        this.stmt.insertChange.run(rev, seq++, p.key, p.value, createRevision, version, p.lease);
      }
      for (const key of deletes) {
        if (this.stmt.deleteKv.run(key).changes === 0) continue;
        this.stmt.insertChange.run(rev, seq++, key, null, null, null, null);
      }
      if (seq === 0) return { committed: true, revision: this.rev };
      this.commitRevision(rev);
      return { committed: true, revision: rev };
    });
    const result = run.immediate();
    this.afterCommit(result.revision);
    return result;
  }

  revision(_options?: CallOptions): Promise<number> {
    return settle(() => {
      this.begin();
      return this.rev;
    });
  }

  // ---------------------------------------------------------------------------------
  // Watches

  watch(prefix: string, fromRevision: number, signal: AbortSignal): AsyncIterable<WatchEvent> {
    return this.watchChanges(prefix, fromRevision, signal);
  }

  private async *watchChanges(prefix: string, fromRevision: number, signal: AbortSignal): AsyncGenerator<WatchEvent> {
    this.begin();
    if (!Number.isSafeInteger(fromRevision) || fromRevision < 0) {
      throw new InvalidArgumentError(`fromRevision: ${fromRevision} is not a non-negative integer`);
    }
    const { cond, params } = this.prefixCondition(prefix);
    if (this.activeWatches >= this.maxWatches) {
      throw new ResourceExhaustedError(`too many watches on the meta store (${this.maxWatches}); retry later`);
    }
    this.activeWatches++;
    try {
      // The cursor: every event up to (lastRev, lastSeq) has been delivered; lastSeq -1
      // means none of lastRev yet, MAX means all of it.
      let lastRev = fromRevision === 0 ? this.rev + 1 : fromRevision;
      let lastSeq = -1;
      const query = this.db.prepare<unknown[], ChangeRow>(
        `SELECT * FROM changes WHERE (revision > ? OR (revision = ? AND seq > ?)) AND ${cond} ORDER BY revision, seq LIMIT ?`,
      );
      for (;;) {
        if (signal.aborted) throw abortReason(signal);
        this.begin();
        if (lastRev < this.compactRev || (lastRev === this.compactRev && lastSeq !== Number.MAX_SAFE_INTEGER)) {
          throw new WatchCompactedError(lastSeq === -1 ? lastRev : lastRev + 1, this.compactRev);
        }
        const seenThrough = this.rev;
        const rows = query.all(lastRev, lastRev, lastSeq, ...params, this.watchBatch);
        if (rows.length === 0) {
          if (seenThrough >= lastRev) {
            lastRev = seenThrough;
            lastSeq = Number.MAX_SAFE_INTEGER;
          }
          await this.waitForCommit(seenThrough, signal);
          continue;
        }
        for (const row of rows) {
          lastRev = row.revision;
          lastSeq = row.seq;
          yield toEvent(row);
        }
        if (rows.length < this.watchBatch && seenThrough >= lastRev) {
          // The batch reached the end of the history as of the query.
          lastRev = seenThrough;
          lastSeq = Number.MAX_SAFE_INTEGER;
        }
      }
    } finally {
      this.activeWatches--;
    }
  }

  private waitForCommit(seenThrough: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.rev > seenThrough || this.closed) {
        resolve();
        return;
      }
      const wake = (): void => {
        signal.removeEventListener("abort", onAbort);
        this.waiters.delete(wake);
        resolve();
      };
      const onAbort = (): void => {
        this.waiters.delete(wake);
        // The reason is whatever the aborting code chose; it passes through, as with fetch.
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
        reject(abortReason(signal));
      };
      this.waiters.add(wake);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  // ---------------------------------------------------------------------------------
  // Leases

  grantLease(ttlMs: number, _options?: CallOptions): Promise<LeaseId> {
    return settle(() => this.grantSync(ttlMs));
  }

  private grantSync(ttlMs: number): LeaseId {
    this.begin();
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > this.maxLeaseTtlMs) {
      throw new InvalidArgumentError(`lease ttl ${ttlMs} ms: must be an integer in [1, ${this.maxLeaseTtlMs}]`);
    }
    const id = Number(this.stmt.insertLease.run(ttlMs, this.clock.now() + ttlMs).lastInsertRowid);
    this.refreshExpiry();
    return String(id);
  }

  keepAlive(lease: LeaseId, _options?: CallOptions): Promise<boolean> {
    return settle(() => this.keepAliveSync(lease));
  }

  private keepAliveSync(lease: LeaseId): boolean {
    this.begin();
    const id = this.leaseNumber(lease);
    const row = this.stmt.getLease.get(id);
    if (row === undefined) return false;
    this.stmt.touchLease.run(this.clock.now() + row.ttl_ms, id);
    this.refreshExpiry();
    return true;
  }

  revoke(lease: LeaseId, _options?: CallOptions): Promise<boolean> {
    return settle(() => this.revokeSync(lease));
  }

  private revokeSync(lease: LeaseId): boolean {
    this.begin();
    const id = this.leaseNumber(lease);
    if (this.stmt.getLease.get(id) === undefined) return false;
    this.endLease(id);
    this.refreshExpiry();
    return true;
  }

  close(): Promise<void> {
    return settle(() => {
      if (this.closed) return;
      this.closed = true;
      this.cancelTimer?.();
      this.cancelTimer = undefined;
      for (const wake of [...this.waiters]) wake();
      this.db.close();
    });
  }

  // ---------------------------------------------------------------------------------
  // Internals

  /** Every public operation starts here: fail when closed, expire leases that are due. */
  private begin(): void {
    if (this.closed) throw new UnavailableError("the meta store is closed");
    this.expireDue();
  }

  private meta(name: string): number {
    return this.stmt.getMeta.get(name)?.value ?? 0;
  }

  private leaseNumber(lease: LeaseId): number {
    if (typeof lease !== "string" || !LEASE_ID.test(lease)) throw new InvalidArgumentError(`lease id ${JSON.stringify(lease)} is malformed`);
    return Number(lease);
  }

  /** An SQL condition (and its parameters) matching the keys under `prefix`. */
  private prefixCondition(prefix: string): { cond: string; params: Buffer[] } {
    if (typeof prefix !== "string") throw new InvalidArgumentError("prefix: must be a string");
    if (prefix === "") return { cond: "1", params: [] };
    const start = encodeKey(prefix, "prefix");
    const end = prefixEnd(start);
    return end === undefined ? { cond: "key >= ?", params: [start] } : { cond: "key >= ? AND key < ?", params: [start, Buffer.from(end)] };
  }

  /** Inside a transaction: record the new revision, compacting old history in steps. */
  private commitRevision(rev: number): void {
    this.stmt.setMeta.run(rev, "revision");
    const keepFrom = rev - this.historyRevisions;
    // Compact in steps of a tenth of the history so that the DELETE stays small.
    if (keepFrom - this.compactRev >= Math.max(1, Math.floor(this.historyRevisions / 10))) {
      this.stmt.compact.run(keepFrom);
      this.stmt.setMeta.run(keepFrom, "compact_revision");
    }
  }

  /** After a transaction committed: publish the revision and wake the watches. */
  private afterCommit(rev: number): void {
    if (rev === this.rev) return;
    this.rev = rev;
    this.compactRev = this.meta("compact_revision");
    for (const wake of [...this.waiters]) wake();
  }

  /** Deletes a lease and its keys in one transaction (one revision if any key existed). */
  private endLease(id: number): void {
    const run = this.db.transaction((): number => {
      const keys = this.stmt.keysOfLease.all(id);
      this.stmt.deleteLease.run(id);
      if (keys.length === 0) return this.rev;
      const rev = this.rev + 1;
      let seq = 0;
      for (const { key } of keys) {
        this.stmt.deleteKv.run(key);
        this.stmt.insertChange.run(rev, seq++, key, null, null, null, null);
      }
      this.commitRevision(rev);
      return rev;
    });
    this.afterCommit(run.immediate());
  }

  private expireDue(): void {
    const now = this.clock.now();
    if (now < this.nextExpiryMs) return;
    for (;;) {
      const due = this.stmt.dueLeases.all(now, EXPIRE_BATCH);
      for (const { id } of due) {
        this.endLease(id);
        this.opts.logger?.debug("lease expired", { lease: String(id) });
      }
      if (due.length < EXPIRE_BATCH) break;
    }
    this.refreshExpiry();
  }

  /** Recomputes the earliest lease deadline and arms one timer for it. */
  private refreshExpiry(): void {
    this.nextExpiryMs = this.stmt.minExpiry.get()?.m ?? Number.POSITIVE_INFINITY;
    if (this.closed) return;
    if (this.nextExpiryMs === Number.POSITIVE_INFINITY) {
      this.cancelTimer?.();
      this.cancelTimer = undefined;
      this.timerAtMs = Number.POSITIVE_INFINITY;
      return;
    }
    // An armed timer that fires no later than the deadline is good enough: it re-arms.
    if (this.cancelTimer !== undefined && this.timerAtMs <= this.nextExpiryMs) return;
    this.cancelTimer?.();
    this.timerAtMs = this.nextExpiryMs;
    this.cancelTimer = this.clock.setTimer(() => {
      this.cancelTimer = undefined;
      this.timerAtMs = Number.POSITIVE_INFINITY;
      if (this.closed) return;
      try {
        this.expireDue();
      } catch (e) {
        // A failed sweep is retried by the next operation (every call sweeps first) and
        // by the timer re-armed below; the store itself stays consistent (rolled back).
        this.opts.logger?.error("lease expiry sweep failed", { err: e });
      }
      // The timer may have been armed for a deadline a keep-alive has since moved: re-arm.
      this.refreshExpiry();
    }, this.nextExpiryMs - this.clock.now());
  }
}
