// The gateway's view of the catalog: @vecraft/meta-client's CatalogFollower (the watch,
// the cache, the re-read on a miss) with the gateway's own mapping on top, each catalog
// turned once into validated ResolvedCollections (spec, shard -> partition), and the
// catalog metrics (revision, collections, watch restarts).
import type { Client } from "@connectrpc/connect";
import { NotFoundError, InternalError, type Logger } from "@vecraft/common";
import { CatalogFollower } from "@vecraft/meta-client";
import { specFromProto, type CollectionSpec } from "@vecraft/model";
import type { Catalog, CatalogCollection, MetaService, RegisteredNode } from "@vecraft/rpc";
import type { GatewayMetrics } from "./metrics.js";
import { downstreamError } from "./scope.js";

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

export class CatalogCache {
  readonly #follower: CatalogFollower;
  /** Derived from the follower's catalog on every change; bounded by the catalog's size. */
  #resolved = new Map<string, ResolvedCollection>();

  constructor(
    meta: Client<typeof MetaService>,
    private readonly logger: Logger,
    private readonly metrics: GatewayMetrics,
    options: CatalogCacheOptions,
  ) {
    this.#follower = new CatalogFollower(meta, logger, {
      fetchTimeoutMs: options.fetchTimeoutMs,
      mapError: (e) => downstreamError("meta-manager", e),
      onWatchRestart: () => metrics.catalogWatchRestarts.inc(),
    });
    this.#follower.onChange((c) => this.#resolve(c));
  }

  /** Starts following the catalog in the background (the first catalog makes `loaded` true). */
  start(): void {
    this.#follower.start();
  }

  get loaded(): boolean {
    return this.#follower.loaded;
  }

  get current(): Catalog | undefined {
    return this.#follower.current;
  }

  onChange(fn: (c: Catalog) => void): () => void {
    return this.#follower.onChange(fn);
  }

  /** The collection, re-reading the catalog once when it is not cached; NOT_FOUND names it. */
  async collection(name: string, signal?: AbortSignal): Promise<ResolvedCollection> {
    const hit = this.#resolved.get(name);
    if (hit !== undefined) return hit;
    await this.#follower.refreshAfterNow(signal);
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
    return this.#follower.node(id);
  }

  /** Re-reads the catalog (joining a re-read only if it started after this call). */
  refreshAfterNow(signal?: AbortSignal): Promise<Catalog> {
    return this.#follower.refreshAfterNow(signal);
  }

  /** Stops the watch loop. */
  close(): Promise<void> {
    return this.#follower.close();
  }

  #resolve(c: Catalog): void {
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
    this.#resolved = resolved;
    this.metrics.catalogRevision.set(Number(c.revision));
    this.metrics.catalogCollections.set(resolved.size);
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
