// The embedded store: the shared MetaStore contract, plus what only it does (SQLite
// pragmas, the single-owner lock, compaction, lease refresh on reopen, bounded watches).
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { EmbeddedMetaStore, WatchCompactedError, type WatchEvent } from "../src/index.js";
import { describeMetaStoreContract } from "./meta-store-contract.js";
import { testStore, type TestStore } from "./helpers.js";

describeMetaStoreContract("EmbeddedMetaStore", async () => {
  const t = await testStore();
  return {
    prefix: "/contract/",
    get store() {
      return t.store;
    },
    reopen: () => t.reopen(),
    advance: (ms) => {
      t.clock.advance(ms);
      return Promise.resolve();
    },
    cleanup: () => t.cleanup(),
  };
});

const v = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("EmbeddedMetaStore", () => {
  let t: TestStore | undefined;
  afterEach(async () => {
    await t?.cleanup();
    t = undefined;
  });

  it("commits durably: WAL with synchronous=FULL, and one process owns the file", async () => {
    t = await testStore();
    await t.store.txn({ puts: [{ key: "k", value: v("v") }] });
    // The lock is exclusive: a second opener (another process, or a bug) cannot fork the revision.
    expect(() => EmbeddedMetaStore.open({ path: t!.path, lockTimeoutMs: 10 })).toThrow(/locked|busy/i);
    await t.store.close();
    const db = new Database(t.path, { readonly: true });
    try {
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
      const row = db.prepare<[], { value: Buffer }>("SELECT value FROM kv").get();
      expect(row?.value.toString()).toBe("v");
    } finally {
      db.close();
    }
    t.store = EmbeddedMetaStore.open({ path: t.path, clock: t.clock });
    const pragma = (t.store as unknown as { db: Database.Database }).db.pragma("synchronous", { simple: true });
    expect(pragma).toBe(2); // FULL
  });

  it("compacts old history: a watch from before it fails with a clear error, later ones work", async () => {
    t = await testStore({ historyRevisions: 10 });
    for (let i = 0; i < 30; i++) await t.store.txn({ puts: [{ key: `k${i % 3}`, value: v(String(i)) }] });
    const compact = t.store.compactRevision;
    expect(compact).toBeGreaterThan(0);
    const ac = new AbortController();
    const failed = (async () => {
      for await (const _ of t.store.watch("", 1, ac.signal)) break;
    })();
    await expect(failed).rejects.toBeInstanceOf(WatchCompactedError);
    await expect(failed).rejects.toMatchObject({ code: Code.OutOfRange, compactRevision: compact });
    const events: WatchEvent[] = [];
    for await (const e of t.store.watch("", compact + 1, ac.signal)) {
      events.push(e);
      if (events.length === 30 - compact) break;
    }
    expect(events.map((e) => (e.type === "put" ? e.kv.modRevision : 0))).toEqual(Array.from({ length: 30 - compact }, (_, i) => compact + 1 + i));
  });

  it("a watch that falls behind compaction fails instead of skipping changes", async () => {
    t = await testStore({ historyRevisions: 10, watchBatch: 2 });
    await t.store.txn({ puts: [{ key: "a", value: v("0") }] });
    const ac = new AbortController();
    const it = t.store.watch("", 1, ac.signal)[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    for (let i = 0; i < 40; i++) await t.store.txn({ puts: [{ key: "a", value: v(String(i)) }] });
    // The watch read a batch of two before the writes; the rest of its history is gone.
    await expect(
      (async () => {
        for (;;) await it.next();
      })(),
    ).rejects.toBeInstanceOf(WatchCompactedError);
    ac.abort();
  });

  it("expires leases on the clock's timer, without any store operation, and wakes watches", async () => {
    t = await testStore();
    const lease = await t.store.grantLease(1000);
    await t.store.txn({ puts: [{ key: "alive/n1", value: v("x"), lease }] });
    const ac = new AbortController();
    const it = t.store.watch("alive/", 0, ac.signal)[Symbol.asyncIterator]();
    const next = it.next();
    expect(t.clock.pendingTimers).toBe(1);
    t.clock.advance(1000);
    const e = (await next).value as WatchEvent;
    expect(e).toMatchObject({ type: "delete", key: "alive/n1" });
    expect(t.clock.pendingTimers).toBe(0);
    // A keep-alive moves the deadline past the armed timer: the timer fires early, finds
    // nothing due, and must re-arm for the new deadline.
    const kept = await t.store.grantLease(1000);
    await t.store.txn({ puts: [{ key: "alive/n2", value: v("y"), lease: kept }] });
    expect((await it.next()).value).toMatchObject({ type: "put", kv: { key: "alive/n2" } });
    const deleted = it.next(); // waiting: only the timer can wake it
    t.clock.advance(600);
    expect(await t.store.keepAlive(kept)).toBe(true);
    t.clock.advance(1001);
    expect((await deleted).value).toMatchObject({ type: "delete", key: "alive/n2" });
    ac.abort();
  });

  it("gives every lease its full ttl again after a reopen, like an etcd leader change", async () => {
    t = await testStore();
    const lease = await t.store.grantLease(1000);
    await t.store.txn({ puts: [{ key: "k", value: v("x"), lease }] });
    t.clock.advance(900);
    await t.store.close();
    t.clock.advance(5000); // the process was down longer than the ttl
    t.store = EmbeddedMetaStore.open({ path: t.path, clock: t.clock });
    expect(await t.store.get("k")).toBeDefined();
    t.clock.advance(999);
    expect(await t.store.keepAlive(lease)).toBe(true);
    t.clock.advance(1000);
    expect(await t.store.get("k")).toBeUndefined();
  });

  it("bounds concurrent watches and validates its inputs", async () => {
    t = await testStore({ maxWatches: 2 });
    const ac = new AbortController();
    const a = t.store.watch("", 0, ac.signal)[Symbol.asyncIterator]();
    const b = t.store.watch("", 0, ac.signal)[Symbol.asyncIterator]();
    const pa = a.next();
    const pb = b.next();
    const c = t.store.watch("", 0, ac.signal)[Symbol.asyncIterator]();
    await expect(c.next()).rejects.toMatchObject({ code: Code.ResourceExhausted });
    ac.abort();
    await expect(pa).rejects.toBeDefined();
    await expect(pb).rejects.toBeDefined();
    await expect(t.store.txn({ puts: [{ key: "", value: v("x") }] })).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(t.store.txn({ puts: [{ key: "a", value: v("x") }], deletes: ["a"] })).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(t.store.txn({ puts: [{ key: "k".repeat(2000), value: v("x") }] })).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(t.store.grantLease(0)).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(t.store.keepAlive("not-a-lease")).rejects.toMatchObject({ code: Code.InvalidArgument });
    // A watch slot is released when its consumer is done.
    const d = t.store.watch("", 0, new AbortController().signal);
    const dIt = d[Symbol.asyncIterator]();
    const dNext = dIt.next();
    await t.store.txn({ puts: [{ key: "z", value: v("1") }] });
    expect((await dNext).done).toBe(false);
    await dIt.return?.(undefined);
  });

  it("ends running watches when it closes, and refuses calls after", async () => {
    t = await testStore();
    const it = t.store.watch("", 0, new AbortController().signal)[Symbol.asyncIterator]();
    const next = it.next();
    await t.store.close();
    await expect(next).rejects.toMatchObject({ code: Code.Unavailable });
    await expect(t.store.get("a")).rejects.toMatchObject({ code: Code.Unavailable });
    t.store = EmbeddedMetaStore.open({ path: t.path, clock: t.clock });
  });
});
