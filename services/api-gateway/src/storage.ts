// Clients of the storage nodes (for their status: DescribeCollection stats, lineage,
// cluster status), one per node address from the catalog, least recently used closed
// first beyond a bound; addresses that leave the catalog are dropped.
import type { Client } from "@connectrpc/connect";
import type { Logger } from "@vecraft/common";
import type { GetStorageStatusResponse, StorageService } from "@vecraft/rpc";
import type { CatalogCache } from "./catalog.js";
import type { GatewayMetrics } from "./metrics.js";
import type { Scope } from "./scope.js";

export type StorageClientFactory = (address: string) => Client<typeof StorageService>;

export class StoragePool {
  /** Map order is recency order: the first key is the least recently used. */
  readonly #clients = new Map<string, Client<typeof StorageService>>();

  constructor(
    private readonly factory: StorageClientFactory,
    private readonly max: number,
    private readonly metrics: GatewayMetrics,
  ) {}

  client(address: string): Client<typeof StorageService> {
    let c = this.#clients.get(address);
    if (c !== undefined) {
      this.#clients.delete(address);
    } else {
      c = this.factory(address);
    }
    this.#clients.set(address, c);
    while (this.#clients.size > this.max) {
      const oldest = this.#clients.keys().next();
      if (oldest.done === true) break;
      // Connect clients hold no sockets themselves: an idle HTTP/2 session closes on its own timeout.
      this.#clients.delete(oldest.value);
    }
    this.metrics.storageClients.set(this.#clients.size);
    return c;
  }

  /** Forgets the clients of addresses no longer in the catalog. */
  retain(addresses: ReadonlySet<string>): void {
    for (const a of [...this.#clients.keys()]) if (!addresses.has(a)) this.#clients.delete(a);
    this.metrics.storageClients.set(this.#clients.size);
  }
}

export interface StatusFetcherDeps {
  readonly pool: StoragePool;
  readonly catalog: CatalogCache;
  readonly logger: Logger;
  /** The most one status call may take. */
  readonly timeoutMs: number;
}

/**
 * GetStorageStatus from each node, in parallel, each within `timeoutMs` (and the client's
 * deadline). A node that is unknown, has no address, or does not answer maps to undefined:
 * callers report it as unavailable instead of failing the whole request.
 */
export async function fetchStorageStatuses(
  deps: StatusFetcherDeps,
  nodeIds: Iterable<string>,
  scope: Scope,
): Promise<Map<string, GetStorageStatusResponse | undefined>> {
  const ids = [...new Set(nodeIds)];
  const remaining = scope.timeoutMs();
  const timeoutMs = Math.max(1, Math.floor(Math.min(deps.timeoutMs, remaining ?? deps.timeoutMs)));
  const results = await Promise.all(
    ids.map(async (id): Promise<[string, GetStorageStatusResponse | undefined]> => {
      const address = deps.catalog.node(id)?.address;
      if (address === undefined || address === "") return [id, undefined];
      try {
        return [id, await deps.pool.client(address).getStorageStatus({}, { signal: scope.signal, timeoutMs })];
      } catch (e) {
        // One node down must not fail a status report: it shows as unavailable.
        deps.logger.debug("storage node did not report its status", { node: id, address, error: e });
        return [id, undefined];
      }
    }),
  );
  return new Map(results);
}
