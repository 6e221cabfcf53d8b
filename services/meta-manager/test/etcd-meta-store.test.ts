// The etcd store against a real etcd server started for this file: the shared MetaStore
// contract (each test in its own key prefix, leases at etcd's 2 s minimum, real sleeps),
// plus what only etcd does: unreachable server, restarts, overflow, compaction, TTL rounding.
import { afterEach, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { silentLogger } from "@vecraft/common";
import { EtcdMetaStore, loadMetaConfig, start, WatchCompactedError, WatchOverflowError, etcdLeaseTtlSeconds, type EtcdMetaStoreOptions, type MetaStore, type WatchEvent } from "../src/index.js";
import { describeMetaStoreContract } from "./meta-store-contract.js";
import { etcdForFile } from "./etcd-server.js";
import { FakeJournal } from "./fake-journal.js";
import { tempDir } from "./helpers.js";

const server = etcdForFile();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const v = (s: string): Uint8Array => new TextEncoder().encode(s);
let prefixes = 0;

describeMetaStoreContract(
  "EtcdMetaStore",
  () => {
    const e = server();
    const prefix = `/contract/${process.pid}/${prefixes++}/`;
    let store = new EtcdMetaStore({ endpoints: [e.endpoint] });
    return Promise.resolve({
      prefix,
      get store() {
        return store;
      },
      async reopen() {
        await store.close();
        store = new EtcdMetaStore({ endpoints: [e.endpoint] });
        return store;
      },
      advance: (ms: number) => sleep(ms),
      async cleanup() {
        await store.close();
        await e.client.delete().prefix(prefix);
      },
    });
  },
  { leaseTtlMs: 2000 },
);

describe("EtcdMetaStore on a real etcd", () => {
  const open: MetaStore[] = [];
  const make = (opts: Partial<EtcdMetaStoreOptions> = {}): EtcdMetaStore => {
    const s = new EtcdMetaStore({ endpoints: [server().endpoint], ...opts });
    open.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  /** Retries `fn` until it succeeds, for up to `ms`. */
  async function eventually<T>(fn: () => Promise<T>, ms = 10_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      try {
        return await fn();
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await sleep(100);
      }
    }
  }

  it("rounds lease TTLs up to whole seconds, at least 2", async () => {
    expect([1, 1000, 2000, 2001, 2999, 3000].map(etcdLeaseTtlSeconds)).toEqual([2, 2, 2, 3, 3, 3]);
    const s = make();
    const lease = await s.grantLease(1);
    const ttl = await server().client.leaseClient.leaseTimeToLive({ ID: lease });
    expect(ttl.grantedTTL).toBe("2");
    expect(await s.revoke(lease)).toBe(true);
  });

  it("calls take an AbortSignal", async () => {
    const s = make();
    const ac = new AbortController();
    const reason = new Error("caller gave up");
    ac.abort(reason);
    await expect(s.get("/x", { signal: ac.signal })).rejects.toBe(reason);
    await expect(s.txn({ puts: [{ key: "/x", value: v("1") }] }, { signal: ac.signal })).rejects.toBe(reason);
    await expect(s.grantLease(2000, { signal: ac.signal })).rejects.toBe(reason);
  });

  it("a slow consumer overflows the bounded watch buffer: WatchOverflowError after the buffered events", async () => {
    const s = make({ watchBufferEvents: 4 });
    const p = "/overflow/";
    const from = (await s.txn({ puts: [{ key: `${p}k`, value: v("start") }] })).revision;
    const ac = new AbortController();
    const it = s.watch(p, from, ac.signal)[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    // The watch is live now: each write arrives as its own response, and nobody takes them.
    for (let i = 0; i < 20; i++) await s.txn({ puts: [{ key: `${p}k`, value: v(String(i)) }] });
    await sleep(200);
    const got: WatchEvent[] = [];
    const err = await (async () => {
      try {
        for (;;) {
          const r = await it.next();
          if (r.done === true) return undefined;
          got.push(r.value);
        }
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(WatchOverflowError);
    expect(err).toMatchObject({ code: Code.ResourceExhausted });
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThanOrEqual(4);
    // What it did deliver is in order, from just after the first event.
    expect(got.map((e) => (e.type === "put" ? new TextDecoder().decode(e.kv.value) : "?"))).toEqual(["0", "1", "2", "3"].slice(0, got.length));
    ac.abort();
  });

  it("a watch from a compacted revision fails with WatchCompactedError", async () => {
    const s = make();
    const p = "/compact/";
    const first = await s.txn({ puts: [{ key: `${p}a`, value: v("1") }] });
    const last = await s.txn({ puts: [{ key: `${p}a`, value: v("2") }] });
    await server().client.kv.compact({ revision: last.revision });
    const ac = new AbortController();
    const failed = (async () => {
      for await (const _ of s.watch(p, first.revision, ac.signal)) break;
    })();
    await expect(failed).rejects.toBeInstanceOf(WatchCompactedError);
    await expect(failed).rejects.toMatchObject({ code: Code.OutOfRange, compactRevision: last.revision });
    ac.abort();
  });

  it("etcd stopped: calls fail with UNAVAILABLE and a clear message; they succeed again after a restart; a watch resumes without gaps", async () => {
    const e = server();
    const s = make({ callTimeoutMs: 1000 });
    const failing = make({ callTimeoutMs: 1000, watchReconnectMs: 0 });
    const p = "/restart/";
    const t1 = await s.txn({ puts: [{ key: `${p}a`, value: v("1") }] });
    const ac = new AbortController();
    const it = s.watch(p, t1.revision, ac.signal)[Symbol.asyncIterator]();
    expect((await it.next()).value).toMatchObject({ type: "put", kv: { key: `${p}a`, modRevision: t1.revision } });
    // A watch that may not reconnect reports the broken stream clearly.
    const it2 = failing.watch(p, t1.revision, ac.signal)[Symbol.asyncIterator]();
    expect((await it2.next()).done).toBe(false);
    // Handled at once: it rejects while the test is still stopping etcd.
    const pending = it2.next().then(
      () => undefined,
      (err: unknown) => err,
    );

    await e.stop();
    const message = new RegExp(`etcd at ${e.endpoint.replace(/[.]/g, "\\.")} is unreachable`);
    await expect(s.get(`${p}a`)).rejects.toMatchObject({ code: Code.Unavailable, message });
    await expect(s.txn({ puts: [{ key: `${p}b`, value: v("x") }] })).rejects.toMatchObject({ code: Code.Unavailable, message });
    await expect(s.grantLease(2000)).rejects.toMatchObject({ code: Code.Unavailable, message });
    await expect(s.revision()).rejects.toMatchObject({ code: Code.Unavailable, message });
    expect(await pending).toMatchObject({ code: Code.Unavailable, message: /lost its stream at revision/ });

    await e.start();
    const kv = await eventually(() => s.get(`${p}a`));
    expect(kv?.modRevision).toBe(t1.revision);
    const t2 = await s.txn({ puts: [{ key: `${p}b`, value: v("2") }] });
    const t3 = await s.txn({ deletes: [`${p}a`] });
    // The first watch re-created its stream from where it was: the next events, in order.
    const e2 = (await it.next()).value as WatchEvent;
    const e3 = (await it.next()).value as WatchEvent;
    expect(e2).toMatchObject({ type: "put", kv: { key: `${p}b`, modRevision: t2.revision } });
    expect(e3).toMatchObject({ type: "delete", key: `${p}a`, revision: t3.revision });
    ac.abort();
  }, 30_000);

  it("the meta-manager runs on etcd with --store etcd --etcd-endpoints", async () => {
    const dir = await tempDir("meta-etcd");
    const argv = ["--data-dir", dir.path, "--port", "0", "--reconcile-interval-ms", "0"];
    try {
      await expect(start(loadMetaConfig({ argv: [...argv, "--store", "etcd"], env: {} }), { logger: silentLogger })).rejects.toMatchObject({
        code: Code.InvalidArgument,
        message: /--etcd-endpoints/,
      });
      const running = await start(loadMetaConfig({ argv: [...argv, "--store", "etcd", "--etcd-endpoints", server().endpoint], env: {} }), {
        logger: silentLogger,
        journal: new FakeJournal(4).client(),
      });
      try {
        // The cluster record is written to etcd at first start.
        const cluster = await server().client.get("/vecraft/meta/cluster").string();
        expect(JSON.parse(cluster ?? "null")).toMatchObject({ partitions: 4 });
      } finally {
        await running.stop();
      }
    } finally {
      await server().client.delete().prefix("/vecraft/meta/");
      await dir.cleanup();
    }
  });
});
