// Test helpers: temporary directories and embedded stores on a manual clock.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedMetaStore, type EmbeddedMetaStoreOptions } from "../src/index.js";
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
