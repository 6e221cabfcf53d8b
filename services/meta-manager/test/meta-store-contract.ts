// The MetaStore contract: one spec, run against every implementation (the embedded
// SQLite store and the etcd store). An implementation's test file calls
// describeMetaStoreContract(name, makeHarness).
import { afterEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import { LeaseNotFoundError, eventRevision, type KeyValue, type MetaStore, type WatchEvent } from "../src/index.js";

export interface MetaStoreHarness {
  /** A key prefix no other test uses (stores may be shared, e.g. one etcd server). */
  readonly prefix: string;
  /** The store under test. */
  readonly store: MetaStore;
  /** Closes `store` and opens the same data again (persistence). */
  reopen(): Promise<MetaStore>;
  /** Lets `ms` of lease time pass: a manual clock, or real sleep for etcd. */
  advance(ms: number): Promise<void>;
  /** Closes whatever is open and removes the data. */
  cleanup(): Promise<void>;
}

export interface ContractOptions {
  /** Lease TTL the lease tests use; etcd needs whole seconds. Default 1000. */
  readonly leaseTtlMs?: number;
  /** fast-check runs of the model test. Default 25. */
  readonly modelRuns?: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const v = (s: string): Uint8Array => enc.encode(s);
const text = (kv: KeyValue | undefined): string | undefined => (kv === undefined ? undefined : dec.decode(kv.value));

/** Takes `n` events from a watch (then stops it), failing after `timeoutMs`. */
async function take(store: MetaStore, prefix: string, from: number, n: number, timeoutMs = 5_000): Promise<WatchEvent[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`watch: fewer than ${n} events within ${timeoutMs} ms`)), timeoutMs);
  const out: WatchEvent[] = [];
  try {
    if (n === 0) return out;
    for await (const e of store.watch(prefix, from, ac.signal)) {
      out.push(e);
      if (out.length >= n) break;
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return out;
}

function summary(events: readonly WatchEvent[], prefix: string): string[] {
  return events.map((e) => (e.type === "put" ? `put ${e.kv.key.slice(prefix.length)}=${dec.decode(e.kv.value)}` : `delete ${e.key.slice(prefix.length)}`));
}

export function describeMetaStoreContract(name: string, makeHarness: () => Promise<MetaStoreHarness>, options: ContractOptions = {}): void {
  const ttl = options.leaseTtlMs ?? 1000;

  describe(`MetaStore contract: ${name}`, () => {
    let h: MetaStoreHarness | undefined;
    afterEach(async () => {
      await h?.cleanup();
      h = undefined;
    });
    const setup = async (): Promise<{ s: MetaStore; p: string; h: MetaStoreHarness }> => {
      h = await makeHarness();
      return { s: h.store, p: h.prefix, h };
    };

    it("puts, gets and ranges; revisions, create revisions and versions follow etcd", async () => {
      const { s, p } = await setup();
      const r0 = await s.revision();
      expect(await s.get(`${p}a`)).toBeUndefined();
      const t1 = await s.txn({ puts: [{ key: `${p}a`, value: v("1") }] });
      expect(t1).toEqual({ committed: true, revision: r0 + 1 });
      const t2 = await s.txn({ puts: [{ key: `${p}b`, value: v("2") }] });
      const t3 = await s.txn({ puts: [{ key: `${p}a`, value: v("3") }] });
      expect(t3.revision).toBe(r0 + 3);
      const a = await s.get(`${p}a`);
      expect(text(a)).toBe("3");
      expect(a).toMatchObject({ key: `${p}a`, createRevision: t1.revision, modRevision: t3.revision, version: 2, lease: undefined });
      const r = await s.range(p);
      expect(r.revision).toBe(t3.revision);
      expect(r.more).toBe(false);
      expect(r.kvs.map((kv) => [kv.key, text(kv), kv.modRevision])).toEqual([
        [`${p}a`, "3", t3.revision],
        [`${p}b`, "2", t2.revision],
      ]);
      // A delete then a put starts a new incarnation.
      const t4 = await s.txn({ deletes: [`${p}a`] });
      const t5 = await s.txn({ puts: [{ key: `${p}a`, value: v("4") }] });
      expect(t4.revision).toBe(t3.revision + 1);
      expect(await s.get(`${p}a`)).toMatchObject({ createRevision: t5.revision, modRevision: t5.revision, version: 1 });
      expect(await s.revision()).toBe(t5.revision);
    });

    it("ranges are byte prefixes in byte order, with a limit that reports more", async () => {
      const { s, p } = await setup();
      const keys = ["x/b", "x/a", "x/ab", "x0", "x", "y", "x/é", "x/z"];
      await s.txn({ puts: keys.map((k) => ({ key: p + k, value: v(k) })) });
      const all = await s.range(`${p}x/`);
      expect(all.kvs.map((kv) => kv.key.slice(p.length))).toEqual(["x/a", "x/ab", "x/b", "x/z", "x/é"]);
      const two = await s.range(`${p}x/`, { limit: 2 });
      expect(two.kvs.map((kv) => kv.key.slice(p.length))).toEqual(["x/a", "x/ab"]);
      expect(two.more).toBe(true);
      expect((await s.range(`${p}x/`, { limit: 5 })).more).toBe(false);
      expect((await s.range(p)).kvs).toHaveLength(keys.length);
    });

    it("compare-and-swap: a stale or wrong compare writes nothing and keeps the revision", async () => {
      const { s, p } = await setup();
      const k = `${p}k`;
      // 0 means "must not exist".
      const created = await s.txn({ compares: [{ key: k, modRevision: 0 }], puts: [{ key: k, value: v("first") }] });
      expect(created.committed).toBe(true);
      const again = await s.txn({ compares: [{ key: k, modRevision: 0 }], puts: [{ key: k, value: v("second") }] });
      expect(again).toEqual({ committed: false, revision: created.revision });
      // Two writers read the same modRevision; only the first swap wins.
      const seen = (await s.get(k))!.modRevision;
      const w1 = await s.txn({ compares: [{ key: k, modRevision: seen }], puts: [{ key: k, value: v("w1") }] });
      const w2 = await s.txn({ compares: [{ key: k, modRevision: seen }], puts: [{ key: k, value: v("w2") }] });
      expect(w1.committed).toBe(true);
      expect(w2.committed).toBe(false);
      expect(w2.revision).toBe(w1.revision);
      expect(text(await s.get(k))).toBe("w1");
      // A compare on a missing key with a non-zero revision fails.
      expect((await s.txn({ compares: [{ key: `${p}missing`, modRevision: 5 }], deletes: [k] })).committed).toBe(false);
      expect(text(await s.get(k))).toBe("w1");
    });

    it("transactions are atomic: every key of a committed one shares one revision; a failed one changes nothing", async () => {
      const { s, p } = await setup();
      await s.txn({
        puts: [
          { key: `${p}old`, value: v("o") },
          { key: `${p}guard`, value: v("g") },
        ],
      });
      const guard = (await s.get(`${p}guard`))!.modRevision;
      const failed = await s.txn({
        compares: [{ key: `${p}guard`, modRevision: guard + 100 }],
        puts: [
          { key: `${p}n1`, value: v("1") },
          { key: `${p}n2`, value: v("2") },
        ],
        deletes: [`${p}old`],
      });
      expect(failed.committed).toBe(false);
      expect((await s.range(p)).kvs.map((kv) => kv.key.slice(p.length))).toEqual(["guard", "old"]);
      const ok = await s.txn({
        compares: [
          { key: `${p}guard`, modRevision: guard },
          { key: `${p}n1`, modRevision: 0 },
        ],
        puts: [
          { key: `${p}n1`, value: v("1") },
          { key: `${p}n2`, value: v("2") },
        ],
        deletes: [`${p}old`],
      });
      expect(ok).toEqual({ committed: true, revision: failed.revision + 1 });
      const after = await s.range(p);
      expect(after.kvs.map((kv) => kv.key.slice(p.length))).toEqual(["guard", "n1", "n2"]);
      expect(after.kvs.filter((kv) => kv.key !== `${p}guard`).every((kv) => kv.modRevision === ok.revision)).toBe(true);
      // A put naming a lease that does not exist fails the whole transaction.
      const lease = await s.grantLease(ttl);
      await s.revoke(lease);
      await expect(
        s.txn({
          puts: [
            { key: `${p}n3`, value: v("3") },
            { key: `${p}n4`, value: v("4"), lease },
          ],
        }),
      ).rejects.toBeInstanceOf(LeaseNotFoundError);
      expect(await s.get(`${p}n3`)).toBeUndefined();
      expect(await s.revision()).toBe(ok.revision);
    });

    it("a transaction that changes nothing does not move the revision", async () => {
      const { s, p } = await setup();
      await s.txn({ puts: [{ key: `${p}a`, value: v("a") }] });
      const r = await s.revision();
      expect(await s.txn({ deletes: [`${p}nothing`] })).toEqual({ committed: true, revision: r });
      expect(await s.txn({ compares: [{ key: `${p}nothing`, modRevision: 0 }] })).toEqual({ committed: true, revision: r });
      expect(await s.revision()).toBe(r);
    });

    it("a watch from a revision sees exactly the later changes under its prefix, in order", async () => {
      const { s, p } = await setup();
      await s.txn({ puts: [{ key: `${p}w/a`, value: v("1") }] });
      const from = (await s.txn({ puts: [{ key: `${p}w/b`, value: v("2") }] })).revision;
      await s.txn({ puts: [{ key: `${p}other`, value: v("x") }] }); // outside the prefix
      await s.txn({
        puts: [
          { key: `${p}w/a`, value: v("3") },
          { key: `${p}w/c`, value: v("4") },
        ],
        deletes: [`${p}w/b`],
      });
      const watching = take(s, `${p}w/`, from, 6);
      // Changes made while the watch is running arrive too, after the history.
      await s.txn({ deletes: [`${p}w/a`] });
      await s.txn({ puts: [{ key: `${p}w/d`, value: v("5") }] });
      const events = await watching;
      expect(summary(events, `${p}w/`)).toEqual(["put b=2", "put a=3", "put c=4", "delete b", "delete a", "put d=5"]);
      const revs = events.map(eventRevision);
      expect(revs[0]).toBe(from);
      expect(revs[1]).toBe(revs[2]);
      expect(revs[2]).toBe(revs[3]);
      for (let i = 1; i < revs.length; i++) expect(revs[i]!).toBeGreaterThanOrEqual(revs[i - 1]!);
      const put = events[1]!;
      expect(put.type === "put" && put.kv.version).toBe(2);
    });

    it("a watch from revision 0 sees only changes after the call; an aborted watch ends with the signal's reason", async () => {
      const { s, p } = await setup();
      await s.txn({ puts: [{ key: `${p}a`, value: v("before") }] });
      const ac = new AbortController();
      const it = s.watch(p, 0, ac.signal)[Symbol.asyncIterator]();
      const first = it.next();
      await new Promise((r) => setTimeout(r, 20));
      await s.txn({ puts: [{ key: `${p}a`, value: v("after") }] });
      const e = (await first).value as WatchEvent;
      expect(e.type === "put" && dec.decode(e.kv.value)).toBe("after");
      const second = it.next();
      const reason = new Error("stop watching");
      ac.abort(reason);
      await expect(second).rejects.toBe(reason);
    });

    it("the watch replays every change exactly once: a model of random transactions (fast-check)", async () => {
      const { s, p } = await setup();
      const keyArb = fc.constantFrom("a", "b", "c", "d");
      const opArb = fc.record({
        puts: fc.uniqueArray(fc.tuple(keyArb, fc.string({ maxLength: 3 })), { selector: ([k]) => k, maxLength: 3 }),
        deletes: fc.uniqueArray(keyArb, { maxLength: 2 }),
        compare: fc.option(fc.tuple(keyArb, fc.boolean()), { nil: undefined }),
      });
      let run = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 12 }), async (ops) => {
          const q = `${p}m${run++}/`;
          const start = (await s.revision()) + 1;
          const model = new Map<string, string>();
          let expectedChanges = 0;
          for (const op of ops) {
            const deletes = op.deletes.filter((d) => !op.puts.some(([k]) => k === d));
            const compares = [];
            if (op.compare !== undefined) {
              const [k, matches] = op.compare;
              const cur = await s.get(q + k);
              compares.push({ key: q + k, modRevision: matches ? (cur?.modRevision ?? 0) : (cur?.modRevision ?? 0) + 1 });
            }
            const res = await s.txn({ compares, puts: op.puts.map(([k, val]) => ({ key: q + k, value: v(val) })), deletes: deletes.map((d) => q + d) });
            if (!res.committed) continue;
            for (const [k, val] of op.puts) model.set(k, val);
            expectedChanges += op.puts.length;
            for (const d of deletes) if (model.delete(d)) expectedChanges++;
          }
          const events = await take(s, q, start, expectedChanges);
          const replayed = new Map<string, string>();
          for (const e of events) {
            if (e.type === "put") replayed.set(e.kv.key.slice(q.length), dec.decode(e.kv.value));
            else replayed.delete(e.key.slice(q.length));
          }
          expect(replayed).toEqual(model);
          const revs = events.map(eventRevision);
          for (let i = 1; i < revs.length; i++) expect(revs[i]!).toBeGreaterThanOrEqual(revs[i - 1]!);
          // Nothing else arrives: the store is in the model's state.
          const now = await s.range(q);
          expect(new Map(now.kvs.map((kv) => [kv.key.slice(q.length), dec.decode(kv.value)]))).toEqual(model);
        }),
        { numRuns: options.modelRuns ?? 25 },
      );
    });

    it("a lease that expires deletes its keys, emitting deletes in one revision; keep-alive extends it", async () => {
      const { s, p, h } = await setup();
      const lease = await s.grantLease(ttl);
      const kept = await s.grantLease(ttl);
      const t = await s.txn({
        puts: [
          { key: `${p}l/a`, value: v("a"), lease },
          { key: `${p}l/b`, value: v("b"), lease },
          { key: `${p}l/kept`, value: v("k"), lease: kept },
          { key: `${p}l/plain`, value: v("p") },
        ],
      });
      expect((await s.get(`${p}l/a`))?.lease).toBe(lease);
      await h.advance(ttl * 0.6);
      expect(await s.keepAlive(kept)).toBe(true);
      await h.advance(ttl * 0.6);
      // `lease` is past its ttl, `kept` is not (it was renewed 0.6 ttl ago).
      const events = await take(s, `${p}l/`, t.revision + 1, 2);
      expect(summary(events, `${p}l/`).sort()).toEqual(["delete a", "delete b"]);
      expect(eventRevision(events[0]!)).toBe(eventRevision(events[1]!));
      expect(await s.get(`${p}l/a`)).toBeUndefined();
      expect(text(await s.get(`${p}l/kept`))).toBe("k");
      expect(text(await s.get(`${p}l/plain`))).toBe("p");
      expect(await s.keepAlive(lease)).toBe(false);
      await expect(s.txn({ puts: [{ key: `${p}l/c`, value: v("c"), lease }] })).rejects.toBeInstanceOf(LeaseNotFoundError);
      await h.advance(ttl * 1.2);
      expect(await s.get(`${p}l/kept`)).toBeUndefined();
      expect(text(await s.get(`${p}l/plain`))).toBe("p");
    });

    it("revoke deletes a lease's keys at once; re-putting a key without a lease detaches it", async () => {
      const { s, p } = await setup();
      const lease = await s.grantLease(ttl * 10);
      await s.txn({
        puts: [
          { key: `${p}a`, value: v("a"), lease },
          { key: `${p}b`, value: v("b"), lease },
        ],
      });
      await s.txn({ puts: [{ key: `${p}b`, value: v("b2") }] });
      expect((await s.get(`${p}b`))?.lease).toBeUndefined();
      const before = await s.revision();
      expect(await s.revoke(lease)).toBe(true);
      expect(await s.get(`${p}a`)).toBeUndefined();
      expect(text(await s.get(`${p}b`))).toBe("b2");
      expect(await s.revision()).toBe(before + 1);
      expect(await s.revoke(lease)).toBe(false);
      expect(await s.keepAlive(lease)).toBe(false);
    });

    it("persists keys, revisions, history and leases across a reopen", async () => {
      const { s, p, h } = await setup();
      const lease = await s.grantLease(ttl * 10);
      const t1 = await s.txn({ puts: [{ key: `${p}a`, value: v("1") }] });
      await s.txn({
        puts: [
          { key: `${p}a`, value: v("2") },
          { key: `${p}leased`, value: v("l"), lease },
        ],
      });
      const rev = await s.revision();
      const s2 = await h.reopen();
      expect(await s2.revision()).toBe(rev);
      expect(await s2.get(`${p}a`)).toMatchObject({ createRevision: t1.revision, modRevision: rev, version: 2 });
      expect(text(await s2.get(`${p}leased`))).toBe("l");
      expect(await s2.keepAlive(lease)).toBe(true);
      const events = await take(s2, p, t1.revision, 3);
      expect(summary(events, p)).toEqual(["put a=1", "put a=2", "put leased=l"]);
      const t3 = await s2.txn({ puts: [{ key: `${p}b`, value: v("3") }] });
      expect(t3.revision).toBe(rev + 1);
      expect(await s2.revoke(lease)).toBe(true);
      expect(await s2.get(`${p}leased`)).toBeUndefined();
    });
  });
}
