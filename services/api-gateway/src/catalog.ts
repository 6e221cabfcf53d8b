// The catalog as this gateway last saw it, kept fresh by MetaService.WatchCatalog (a
// reconnect loop with exponential backoff and jitter). The data path reads it without a
// round trip; a lookup that misses re-reads the catalog once (GetCatalog) before
// answering NOT_FOUND, so that a collection just created through another gateway is
// found. Concurrent misses share one re-read, but only one that started after they
// arrived.
import type { Client } from "@connectrpc/connect";
import { abortableSleep, backoffDelays, DEFAULT_BACKOFF, InternalError, NotFoundError, abortReason, type Logger } from "@vecraft/common";
import { specFromProto, type CollectionSpec } from "@vecraft/model";
import type { Catalog, CatalogCollection, MetaService, RegisteredNode } from "@vecraft/rpc";
import type { GatewayMetrics } from "./metrics.js";
import { downstream } from "./scope.js";

/** A collection of the catalog with its validated spec and shard -> partition map. */
export interface ResolvedCollection {
  readonly entry: CatalogCollection;
  readonly spec: CollectionSpec;
  readonly uid: string;
  readonly createdTs: bigint;
  /** partitionOf[shard]; undefined for a shard without placement (a broken catalog). */
  readonly partitionOf: readonly (number | undefined)[];
  /** Distinct partitions hosting the collection, ascending. */
  readonly partitions: readonly number[];
}

export interface CatalogCacheOptions {
  /** Deadline of one GetCatalog call. */
  readonly fetchTimeoutMs: number;
}

interface Fetch {
  readonly id: number;
  readonly done: Promise<void>;
}

/**
 * Races a promise with a signal, without cancelling the shared promise itself. Rejects
 * with the signal's reason (whatever the aborting code chose, often a ConnectError), as
 * abortableSleep does.
 */
export function raceSignal<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return p;
  // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the abort reason passes through untouched
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the abort reason passes through untouched
    const onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- passes the original rejection through
        reject(e);
      },
    );
  });
}

export class CatalogCache {
  #catalog: Catalog | undefined;
  /** Derived from #catalog on every change; bounded by the catalog's size. */
  #resolved = new Map<string, ResolvedCollection>();
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #fetches = 0;
  #inflight: Fetch | undefined;
  readonly #listeners = new Set<(c: Catalog) => void>();

  constructor(
    private readonly meta: Client<typeof MetaService>,
    private readonly logger: Logger,
    private readonly metrics: GatewayMetrics,
    private readonly options: CatalogCacheOptions,
  ) {}

  /** Starts following the catalog in the background (the first catalog makes `loaded` true). */
  start(): void {
    this.#loop ??= this.#follow();
  }

  get loaded(): boolean {
    return this.#catalog !== undefined;
  }

  get current(): Catalog | undefined {
    return this.#catalog;
  }

  onChange(fn: (c: Catalog) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** The collection, re-reading the catalog once when it is not cached; NOT_FOUND names it. */
  async collection(name: string, signal?: AbortSignal): Promise<ResolvedCollection> {
    const hit = this.#resolved.get(name);
    if (hit !== undefined) return hit;
    await this.refreshAfterNow(signal);
    const again = this.#resolved.get(name);
    if (again === undefined) throw new NotFoundError(`collection ${JSON.stringify(name)} does not exist`, { details: { collection: name } });
    return again;
  }

  /** The cached collection, without a re-read (undefined when unknown). */
  cached(name: string): ResolvedCollection | undefined {
    return this.#resolved.get(name);
  }

  /** Every cached collection, by name. */
  collections(): ResolvedCollection[] {
    return [...this.#resolved.values()].sort((a, b) => (a.spec.name < b.spec.name ? -1 : a.spec.name > b.spec.name ? 1 : 0));
  }

  node(id: string): RegisteredNode | undefined {
    return this.#catalog?.nodes.find((n) => n.id === id);
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

  #startFetch(): Fetch {
    const id = ++this.#fetches;
    const done = (async (): Promise<void> => {
      const res = await downstream("meta-manager", () => this.meta.getCatalog({}, { signal: this.#stop.signal, timeoutMs: this.options.fetchTimeoutMs }));
      if (res.catalog === undefined) throw new InternalError("GetCatalog returned no catalog");
      this.#set(res.catalog);
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
    const resolved = new Map<string, ResolvedCollection>();
    for (const entry of c.collections) {
      const proto = entry.collection;
      if (proto === undefined) continue;
      try {
        resolved.set(proto.name, resolve(entry));
      } catch (e) {
        // A catalog entry that would not pass CreateCollection is left out, loudly: using
        // it could misplace records.
        this.logger.error("ignoring an invalid catalog entry", { collection: proto.name, error: e });
      }
    }
    this.#catalog = c;
    this.#resolved = resolved;
    this.metrics.catalogRevision.set(Number(c.revision));
    this.metrics.catalogCollections.set(resolved.size);
    for (const fn of this.#listeners) {
      try {
        fn(c);
      } catch (e) {
        this.logger.error("catalog listener failed", { error: e });
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
          if (msg.catalog !== undefined) this.#set(msg.catalog);
          delays = backoffDelays(DEFAULT_BACKOFF);
        }
        if (signal.aborted) return;
        this.logger.info("catalog watch ended; reopening");
      } catch (e) {
        if (signal.aborted) return;
        this.logger.warn("catalog watch failed; reopening after a backoff", { error: e });
      }
      this.metrics.catalogWatchRestarts.inc();
      const wait = delays.next().value ?? DEFAULT_BACKOFF.maxMs;
      try {
        await abortableSleep(wait, signal);
      } catch {
        // Aborted: the cache is closing.
        return;
      }
    }
  }
}

function resolve(entry: CatalogCollection): ResolvedCollection {
  const proto = entry.collection;
  if (proto === undefined) throw new InternalError("catalog entry without a collection");
  const spec = specFromProto(proto);
  const partitionOf: (number | undefined)[] = new Array<number | undefined>(spec.shards).fill(undefined);
  for (const p of entry.shards) {
    if (p.shard < spec.shards) partitionOf[p.shard] = p.partition;
  }
  const partitions = [...new Set(partitionOf.filter((p): p is number => p !== undefined))].sort((a, b) => a - b);
  return Object.freeze({ entry, spec, uid: entry.uid, createdTs: proto.createdTs, partitionOf, partitions });
}
