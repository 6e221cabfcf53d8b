// The catalog feed: one watch on the store, shared by every WatchCatalog stream. It keeps
// the latest catalog snapshot; a burst of changes becomes one re-read (coalescing), and a
// stream that reads slowly simply skips to the newest snapshot when it pulls again, so a
// stream costs one pending wake-up, never a queue.
import { ResourceExhaustedError, UnavailableError, abortReason, abortableSleep, backoffDelays, type Logger } from "@vecraft/common";
import type { Catalog } from "@vecraft/rpc";
import { eventRevision, type MetaStore } from "./store/meta-store.js";

export interface CatalogFeedOptions {
  readonly store: MetaStore;
  /** The key prefix whose changes change the catalog. */
  readonly prefix: string;
  /** Reads the whole catalog at one revision. */
  readonly read: (signal: AbortSignal) => Promise<Catalog>;
  /** Wait this long after a change before re-reading, so a burst costs one read. */
  readonly coalesceMs: number;
  /** Concurrent streams allowed; more fail with ResourceExhausted. */
  readonly maxStreams: number;
  readonly logger: Logger;
  /** Called after each new snapshot (metrics). */
  readonly onSnapshot?: (catalog: Catalog) => void;
  /** What a new stream starts with when the fresh read fails with `e` (a cached catalog), or undefined to fail. */
  readonly cached?: (e: unknown, signal: AbortSignal) => Catalog | undefined;
}

/** Most snapshot listeners (in-process components, not streams). */
const MAX_LISTENERS = 16;

export class CatalogFeed {
  private latest: Catalog | undefined;
  /** One wake-up per stream waiting for a newer snapshot; bounded by maxStreams. */
  private readonly waiters = new Set<() => void>();
  private readonly listeners = new Set<(c: Catalog) => void>();
  private streams = 0;
  private closing = false;
  private readonly stop = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(private readonly opts: CatalogFeedOptions) {}

  /** Starts following the store in the background. */
  start(): void {
    this.loop ??= this.run(this.stop.signal);
  }

  /** Calls `listener` after each new snapshot; returns the unsubscribe function. */
  subscribe(listener: (c: Catalog) => void): () => void {
    if (this.listeners.size >= MAX_LISTENERS) throw new RangeError(`at most ${MAX_LISTENERS} catalog feed listeners`);
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The newest snapshot, once the first read succeeded. */
  get current(): Catalog | undefined {
    return this.latest;
  }

  get activeStreams(): number {
    return this.streams;
  }

  /**
   * The catalog now (a fresh read) if its revision exceeds `afterRevision`, then each
   * newer snapshot as the consumer pulls. Ends with Unavailable when the feed closes.
   */
  async *watch(afterRevision: bigint, signal: AbortSignal): AsyncGenerator<Catalog> {
    if (this.closing) throw new UnavailableError("the meta-manager is shutting down; watch another instance or retry");
    if (this.streams >= this.opts.maxStreams) {
      throw new ResourceExhaustedError(`too many catalog watch streams (${this.opts.maxStreams}); retry later`);
    }
    this.streams++;
    try {
      let sent = afterRevision;
      let now: Catalog;
      try {
        now = await this.opts.read(signal);
        this.publish(now);
      } catch (e) {
        const cached = this.opts.cached?.(e, signal);
        if (cached === undefined) throw e;
        now = cached;
      }
      if (now.revision > sent) {
        yield now;
        sent = now.revision;
      }
      for (;;) {
        const next = await this.newerThan(sent, signal);
        yield next;
        sent = next.revision;
      }
    } finally {
      this.streams--;
    }
  }

  /** Ends every stream (with Unavailable) and stops following the store. */
  async close(): Promise<void> {
    this.closing = true;
    this.stop.abort(new UnavailableError("the meta-manager is shutting down"));
    for (const wake of [...this.waiters]) wake();
    await this.loop;
  }

  /** Ends every stream now and refuses new ones, but keeps following (graceful shutdown, step 1). */
  endStreams(): void {
    this.closing = true;
    for (const wake of [...this.waiters]) wake();
  }

  private newerThan(revision: bigint, signal: AbortSignal): Promise<Catalog> {
    return new Promise<Catalog>((resolve, reject) => {
      const check = (): boolean => {
        if (signal.aborted) {
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
          reject(abortReason(signal));
          return true;
        }
        if (this.closing) {
          reject(new UnavailableError("the meta-manager is shutting down; watch another instance or retry"));
          return true;
        }
        const c = this.latest;
        if (c !== undefined && c.revision > revision) {
          resolve(c);
          return true;
        }
        return false;
      };
      if (check()) return;
      const wake = (): void => {
        if (check()) done();
      };
      const done = (): void => {
        this.waiters.delete(wake);
        signal.removeEventListener("abort", wake);
      };
      this.waiters.add(wake);
      signal.addEventListener("abort", wake, { once: true });
    });
  }

  private publish(c: Catalog): void {
    if (this.latest !== undefined && c.revision <= this.latest.revision) return;
    this.latest = c;
    // A throwing listener must not keep the others, or the streams, from seeing the snapshot.
    try {
      this.opts.onSnapshot?.(c);
    } catch (e) {
      this.opts.logger.error("catalog snapshot hook failed", { err: e, revision: c.revision.toString() });
    }
    for (const l of [...this.listeners]) {
      try {
        l(c);
      } catch (e) {
        this.opts.logger.error("catalog feed listener failed", { err: e, revision: c.revision.toString() });
      }
    }
    for (const wake of [...this.waiters]) wake();
  }

  private async run(signal: AbortSignal): Promise<void> {
    let delays = backoffDelays({ initialMs: 50, maxMs: 5_000, multiplier: 2, jitter: 0.3 });
    while (!signal.aborted) {
      try {
        this.publish(await this.opts.read(signal));
        const from = Number(this.latest?.revision ?? 0n) + 1;
        for await (const event of this.opts.store.watch(this.opts.prefix, from, signal)) {
          if (BigInt(eventRevision(event)) <= (this.latest?.revision ?? 0n)) continue;
          if (this.opts.coalesceMs > 0) await abortableSleep(this.opts.coalesceMs, signal);
          this.publish(await this.opts.read(signal));
          delays = backoffDelays({ initialMs: 50, maxMs: 5_000, multiplier: 2, jitter: 0.3 });
        }
      } catch (e) {
        if (signal.aborted) return;
        // A compacted or overflowing watch, or a store hiccup: re-read and watch again
        // (snapshots are whole catalogs, so nothing is lost), after a jittered pause.
        const delay = delays.next().value ?? 5_000;
        this.opts.logger.warn("catalog watch failed; re-reading the catalog", { err: e, retryInMs: delay });
        try {
          await abortableSleep(delay, signal);
        } catch {
          // Aborted: the feed is closing.
          return;
        }
      }
    }
  }
}
