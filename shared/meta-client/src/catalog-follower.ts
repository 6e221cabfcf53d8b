// The catalog as this process last saw it, kept fresh by MetaService.WatchCatalog (a
// reconnect loop with exponential backoff and jitter). Every service that routes by the
// catalog (gateways, query processors, storage nodes) follows it through this class.
//
// The data path reads the cached catalog without a round trip, so reads and writes on
// the existing topology keep working while the meta-manager or etcd is away. A lookup
// that misses re-reads the catalog once (GetCatalog) before answering NOT_FOUND, so a
// collection just created through another gateway is found. Concurrent misses share one
// re-read, but only one that started after they arrived (an earlier one may have missed
// the change they are looking for).
import type { Client } from "@connectrpc/connect";
import { abortableSleep, backoffDelays, DEFAULT_BACKOFF, InternalError, NotFoundError, raceSignal, type Logger } from "@vecraft/common";
import type { Catalog, CatalogCollection, MetaService, NodeRole, RegisteredNode } from "@vecraft/rpc";

export interface CatalogFollowerOptions {
  /** Deadline of one GetCatalog call (default 5 s). */
  readonly fetchTimeoutMs?: number;
  /** Wraps a GetCatalog failure (e.g. to name the meta-manager in the message). */
  readonly mapError?: (e: unknown) => unknown;
  /** Called after each watch break, before the backoff (metrics). */
  readonly onWatchRestart?: () => void;
}

interface Fetch {
  readonly id: number;
  readonly done: Promise<void>;
}

export class CatalogFollower {
  #catalog: Catalog | undefined;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #fetches = 0;
  #inflight: Fetch | undefined;
  #watching = false;
  readonly #listeners = new Set<(c: Catalog) => void>();
  readonly #fetchTimeoutMs: number;

  constructor(
    private readonly meta: Client<typeof MetaService>,
    private readonly logger: Logger,
    private readonly options: CatalogFollowerOptions = {},
  ) {
    this.#fetchTimeoutMs = options.fetchTimeoutMs ?? 5_000;
  }

  /** Starts following the catalog in the background (the first catalog makes `loaded` true). */
  start(): void {
    this.#loop ??= this.#follow();
  }

  /** Starts following and waits for the first catalog (a GetCatalog). */
  async load(signal?: AbortSignal): Promise<Catalog> {
    this.start();
    return this.#catalog ?? this.refreshAfterNow(signal);
  }

  get loaded(): boolean {
    return this.#catalog !== undefined;
  }

  /** Whether the watch stream is open now (false: the cache may be stale). */
  get watching(): boolean {
    return this.#watching;
  }

  get current(): Catalog | undefined {
    return this.#catalog;
  }

  /** Calls `fn` with every newer catalog; returns the unsubscribe function. */
  onChange(fn: (c: Catalog) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** The READY collection, re-reading the catalog once when it is not cached; NOT_FOUND names it. */
  async collection(name: string, signal?: AbortSignal): Promise<CatalogCollection> {
    const hit = this.#find(name);
    if (hit !== undefined) return hit;
    await this.refreshAfterNow(signal);
    const again = this.#find(name);
    if (again === undefined) throw new NotFoundError(`collection ${JSON.stringify(name)} does not exist`, { details: { collection: name } });
    return again;
  }

  node(id: string): RegisteredNode | undefined {
    return this.#catalog?.nodes.find((n) => n.id === id);
  }

  /** Base URL of a node by id, if registered. */
  nodeAddress(id: string): string | undefined {
    return this.node(id)?.address;
  }

  /** Registered nodes with `role` whose lease is alive, by id. */
  aliveNodes(role: NodeRole): RegisteredNode[] {
    return (this.#catalog?.nodes ?? []).filter((n) => n.alive && n.roles.includes(role));
  }

  /**
   * Re-reads the catalog, joining a re-read only if it started after this call: one that
   * started earlier may have missed a change the caller is looking for.
   */
  async refreshAfterNow(signal?: AbortSignal): Promise<Catalog> {
    const mark = this.#fetches;
    let f = this.#inflight;
    if (f !== undefined && f.id <= mark) {
      await raceSignal(
        f.done.catch(() => undefined),
        signal,
      );
      f = this.#inflight;
    }
    if (f === undefined || f.id <= mark) f = this.#startFetch();
    await raceSignal(f.done, signal);
    const c = this.#catalog;
    if (c === undefined) throw new InternalError("catalog missing after a successful read");
    return c;
  }

  /** Stops the watch loop. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  #find(name: string): CatalogCollection | undefined {
    return this.#catalog?.collections.find((c) => c.collection?.name === name);
  }

  #startFetch(): Fetch {
    const id = ++this.#fetches;
    const done = (async (): Promise<void> => {
      try {
        const res = await this.meta.getCatalog({}, { signal: this.#stop.signal, timeoutMs: this.#fetchTimeoutMs });
        if (res.catalog === undefined) throw new InternalError("GetCatalog returned no catalog");
        this.#set(res.catalog);
      } catch (e) {
        throw this.options.mapError ? this.options.mapError(e) : e;
      }
    })();
    const f: Fetch = { id, done };
    this.#inflight = f;
    // Cleared when settled; a rejection is observed by the callers that await it.
    done.then(
      () => this.#clear(f),
      () => this.#clear(f),
    );
    return f;
  }

  #clear(f: Fetch): void {
    if (this.#inflight === f) this.#inflight = undefined;
  }

  #set(c: Catalog): void {
    if (this.#catalog !== undefined && c.revision < this.#catalog.revision) return;
    this.#catalog = c;
    for (const fn of this.#listeners) {
      try {
        fn(c);
      } catch (e) {
        this.logger.error("catalog listener failed", { err: e });
      }
    }
  }

  async #follow(): Promise<void> {
    const signal = this.#stop.signal;
    let delays = backoffDelays(DEFAULT_BACKOFF);
    while (!signal.aborted) {
      try {
        const after = this.#catalog?.revision ?? 0n;
        for await (const msg of this.meta.watchCatalog({ afterRevision: after }, { signal })) {
          this.#watching = true;
          if (msg.catalog !== undefined) this.#set(msg.catalog);
          delays = backoffDelays(DEFAULT_BACKOFF);
        }
        if (signal.aborted) return;
        this.logger.info("catalog watch ended; reopening");
      } catch (e) {
        if (signal.aborted) return;
        this.logger.warn("catalog watch failed; serving the cached catalog and reopening after a backoff", {
          err: e,
          cachedRevision: this.#catalog?.revision,
        });
      } finally {
        this.#watching = false;
      }
      this.options.onWatchRestart?.();
      const wait = delays.next().value ?? DEFAULT_BACKOFF.maxMs;
      try {
        await abortableSleep(wait, signal);
      } catch {
        // Aborted: the follower is closing.
        return;
      }
    }
  }
}
