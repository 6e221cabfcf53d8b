// start(config, deps): a query processor as a value (tests, standalone).
import type { Registry } from "prom-client";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createMetrics, startRpcServer, type Logger, type RpcServer } from "@vecraft/common";
import type { PhysicalClock } from "@vecraft/hlc";
import { JournalService, MetaService, StorageService } from "@vecraft/rpc";
import { CatalogCache } from "./catalog-cache.js";
import type { QueryConfig } from "./config.js";
import { createQueryMetrics } from "./metrics.js";
import { QueryEngine, type StorageClientFor } from "./query.js";
import { createQueryServiceImpl } from "./query-service.js";
import { queryRoutes } from "./routes.js";

export interface QueryDeps {
  readonly logger: Logger;
  readonly registry?: Registry;
  readonly journal?: Client<typeof JournalService>;
  readonly meta?: Client<typeof MetaService>;
  /** Storage clients by node address; gRPC clients, kept in a bounded LRU, when absent. */
  readonly storageFor?: StorageClientFor;
  readonly clock?: PhysicalClock;
}

export interface RunningQuery {
  readonly server: RpcServer;
  readonly url: string;
  stop(): Promise<void>;
}

/** gRPC clients per storage node address, the least recently used dropped past `max`. */
export function storageClientPool(max: number): StorageClientFor {
  const pool = new Map<string, Client<typeof StorageService>>();
  return (address) => {
    let c = pool.get(address);
    if (c) {
      pool.delete(address);
    } else {
      c = createClient(StorageService, createGrpcTransport({ baseUrl: address }));
      if (pool.size >= max) {
        const oldest = pool.keys().next();
        if (!oldest.done) pool.delete(oldest.value);
      }
    }
    pool.set(address, c);
    return c;
  };
}

export async function start(config: QueryConfig, deps: QueryDeps): Promise<RunningQuery> {
  const { logger } = deps;
  const registry = deps.registry ?? createMetrics();
  const journal = deps.journal ?? createClient(JournalService, createGrpcTransport({ baseUrl: config.journalUrl }));
  const meta = deps.meta ?? createClient(MetaService, createGrpcTransport({ baseUrl: config.metaUrl }));
  const catalog = new CatalogCache(meta, logger);
  await catalog.start();
  const engine = new QueryEngine(catalog, journal, deps.storageFor ?? storageClientPool(config.maxStorageClients), logger, {
    defaultStalenessMs: config.defaultStalenessMs,
    defaultWaitMs: config.defaultWaitMs,
    clock: deps.clock ?? { now: () => Date.now() },
  });
  const impl = createQueryServiceImpl(engine, createQueryMetrics(registry));
  let server: RpcServer;
  try {
    server = await startRpcServer({
      // Internal service on loopback: compression costs CPU and saves nothing.
      compression: false,
      routes: queryRoutes(impl),
      host: config.host,
      port: config.port,
      logger,
      registry,
      ready: () => catalog.current !== undefined,
    });
  } catch (e) {
    await catalog.close();
    throw e;
  }
  let stopping: Promise<void> | undefined;
  return {
    server,
    url: server.url,
    stop() {
      stopping ??= (async () => {
        await server.close(config.shutdownGraceMs);
        await catalog.close();
      })();
      return stopping;
    },
  };
}
