// Test helpers: temporary directories and embedded stores on a manual clock.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UnavailableError } from "@vecraft/common";
import { EmbeddedMetaStore, type EmbeddedMetaStoreOptions, type MetaStore } from "../src/index.js";
import { ManualClock } from "./manual-clock.js";

export async function tempDir(prefix: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `vecraft-${prefix}-`));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

export interface TestStore {
  readonly path: string;
  readonly clock: ManualClock;
  store: EmbeddedMetaStore;
  reopen(): Promise<EmbeddedMetaStore>;
  cleanup(): Promise<void>;
}

/** An embedded store in a fresh temporary directory, on a manual clock. */
export async function testStore(options: Partial<EmbeddedMetaStoreOptions> = {}): Promise<TestStore> {
  const dir = await tempDir("meta");
  const path = join(dir.path, "meta", "meta.sqlite");
  const clock = new ManualClock();
  const t: TestStore = {
    path,
    clock,
    store: EmbeddedMetaStore.open({ clock, ...options, path }),
    async reopen() {
      await t.store.close();
      t.store = EmbeddedMetaStore.open({ clock, ...options, path });
      return t.store;
    },
    async cleanup() {
      await t.store.close();
      await dir.cleanup();
    },
  };
  return t;
}

/** An embedded store whose calls fail with UnavailableError while `down` is set, like an unreachable etcd. */
export class FlakyStore implements MetaStore {
  down = false;
  constructor(private readonly inner: MetaStore) {}
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    if (this.down) throw new UnavailableError("etcd at http://127.0.0.1:1 is unreachable: injected");
    return fn();
  }
  get: MetaStore["get"] = (...a) => this.call(() => this.inner.get(...a));
  range: MetaStore["range"] = (...a) => this.call(() => this.inner.range(...a));
  txn: MetaStore["txn"] = (...a) => this.call(() => this.inner.txn(...a));
  revision: MetaStore["revision"] = (...a) => this.call(() => this.inner.revision(...a));
  grantLease: MetaStore["grantLease"] = (...a) => this.call(() => this.inner.grantLease(...a));
  keepAlive: MetaStore["keepAlive"] = (...a) => this.call(() => this.inner.keepAlive(...a));
  revoke: MetaStore["revoke"] = (...a) => this.call(() => this.inner.revoke(...a));
  watch: MetaStore["watch"] = (...a) => this.inner.watch(...a);
  close = (): Promise<void> => Promise.resolve();
}

/** Polls `fn` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 5_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
