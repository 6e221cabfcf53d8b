// The catalog as this process last saw it, kept fresh by MetaService.WatchCatalog with
// reconnects (backoff with jitter). A lookup that misses re-reads the catalog once
// before answering NOT_FOUND, so a collection created a moment ago through another
// gateway is found.
import type { Client } from "@connectrpc/connect";
import { abortableSleep, backoffDelays, NotFoundError, type Logger } from "@vecraft/common";
import type { Catalog, CatalogCollection, MetaService } from "@vecraft/rpc";

export class CatalogCache {
  private catalog: Catalog | undefined;
  private readonly stop = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly meta: Client<typeof MetaService>,
    private readonly logger: Logger,
  ) {}

  /** Starts following the catalog; resolves once the first catalog arrived. */
  async start(signal?: AbortSignal): Promise<void> {
    await this.refresh(signal);
    this.loop = this.follow();
  }

  get current(): Catalog | undefined {
    return this.catalog;
  }

  /** The collection, re-reading the catalog once when it is not in the cache. */
  async collection(name: string, signal?: AbortSignal): Promise<CatalogCollection> {
    const hit = this.find(name);
    if (hit) return hit;
    await this.refresh(signal);
    const again = this.find(name);
    if (!again) throw new NotFoundError(`collection ${JSON.stringify(name)} does not exist`);
    return again;
  }

  /** Base URL of a node by id, if registered. */
  nodeAddress(id: string): string | undefined {
    return this.catalog?.nodes.find((n) => n.id === id)?.address;
  }

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.loop?.catch(() => undefined);
  }

  private find(name: string): CatalogCollection | undefined {
    return this.catalog?.collections.find((c) => c.collection?.name === name);
  }

  private async refresh(signal?: AbortSignal): Promise<void> {
    const res = await this.meta.getCatalog({}, signal ? { signal } : {});
    if (res.catalog) this.set(res.catalog);
  }

  private set(c: Catalog): void {
    if (this.catalog && c.revision < this.catalog.revision) return;
    this.catalog = c;
    for (const fn of this.listeners) fn();
  }

  private async follow(): Promise<void> {
    const signal = this.stop.signal;
    let delays = backoffDelays({ initialMs: 100, maxMs: 5000, multiplier: 2, jitter: 0.2 });
    while (!signal.aborted) {
      try {
        for await (const msg of this.meta.watchCatalog({ afterRevision: this.catalog?.revision ?? 0n }, { signal })) {
          if (msg.catalog) this.set(msg.catalog);
          delays = backoffDelays({ initialMs: 100, maxMs: 5000, multiplier: 2, jitter: 0.2 });
        }
      } catch (e) {
        if (signal.aborted) return;
        const wait = delays.next().value ?? 5000;
        this.logger.warn("catalog watch failed; retrying", { err: e, retryInMs: wait });
        try {
          await abortableSleep(wait, signal);
        } catch {
          // Aborted: closing.
          return;
        }
      }
    }
  }
}
