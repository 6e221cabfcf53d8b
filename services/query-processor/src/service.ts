// start(config, deps): a query processor as a value (tests, standalone).
import type { Registry } from "prom-client";
import { createClient, type Client } from "@connectrpc/connect";
import { createMetrics, startRpcServer, type Logger, type RpcServer } from "@vecraft/common";
import type { PhysicalClock } from "@vecraft/hlc";
import { JournalService, MetaService, NodeRole, StorageService } from "@vecraft/rpc";
import { CatalogFollower, ClientPool, internalGrpcTransport, keepRegistered, type Registration } from "@vecraft/meta-client";
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
  readonly registration: Registration;
  stop(): Promise<void>;
}

/**
 * gRPC clients per storage node address (at most `max`, least recently used dropped
 * first). `forget` drops a client whose connection broke, so the next call opens a new
 * one. Pings find a connection whose peer vanished without closing it.
 */
export function storageClientPool(max: number): StorageClientFor {
  const pool = new ClientPool(StorageService, { max, transport: { pingIntervalMs: 10_000, pingTimeoutMs: 5_000, idleConnectionTimeoutMs: 60_000 } });
  return Object.assign((address: string) => pool.get(address), { forget: (address: string) => pool.forget(address) });
}

export async function start(config: QueryConfig, deps: QueryDeps): Promise<RunningQuery> {
  const { logger } = deps;
  const registry = deps.registry ?? createMetrics();
  const journal = deps.journal ?? createClient(JournalService, internalGrpcTransport({ baseUrl: config.journalUrl }));
  const meta = deps.meta ?? createClient(MetaService, internalGrpcTransport({ baseUrl: config.metaUrl }));
  // The catalog arrives in the background: the process comes up (and reports not ready)
  // while the meta-manager is still starting or briefly away.
  const catalog = new CatalogFollower(meta, logger);
  catalog.start();
  const metrics = createQueryMetrics(registry);
  const engine = new QueryEngine(catalog, journal, deps.storageFor ?? storageClientPool(config.maxStorageClients), logger, {
    defaultStalenessMs: config.defaultStalenessMs,
    defaultWaitMs: config.defaultWaitMs,
    clock: deps.clock ?? { now: () => Date.now() },
    metrics,
    health: { baseCooldownMs: config.replicaCooldownMs, maxCooldownMs: config.replicaMaxCooldownMs, now: () => performance.now() },
  });
  const impl = createQueryServiceImpl(engine, metrics);
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
      // Ready once the catalog is loaded; the registration is not a condition (an etcd
      // outage must not take query processors out of service).
      ready: () => catalog.loaded,
    });
  } catch (e) {
    await catalog.close();
    throw e;
  }
  const registration = keepRegistered(
    meta,
    { id: config.nodeId, address: config.advertiseUrl || server.url, roles: [NodeRole.QUERY_PROCESSOR] },
    config.leaseTtlMs,
    logger,
  );
  let stopping: Promise<void> | undefined;
  return {
    server,
    url: server.url,
    registration,
    stop() {
      stopping ??= (async () => {
        await registration.stop();
        await server.close(config.shutdownGraceMs);
        await catalog.close();
      })();
      return stopping;
    },
  };
}
