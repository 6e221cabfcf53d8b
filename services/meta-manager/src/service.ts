// start(config, deps): the meta-manager as a value, so that tests and the standalone
// process can run it in-process, and main.ts stays a thin composition root.
import { join } from "node:path";
import type { Registry } from "prom-client";
import { createClient, type Client } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";
import { InvalidArgumentError, createMetrics, startRpcServer, type Logger, type RpcServer } from "@vecraft/common";
import { JournalService, type StorageService } from "@vecraft/rpc";
import { Catalog } from "./catalog.js";
import type { MetaConfig } from "./config.js";
import { journalDdl } from "./ddl.js";
import { FailoverController } from "./failover.js";
import { createMetaServiceImpl } from "./meta-service.js";
import { createMetaMetrics } from "./metrics.js";
import { PartitionMapController } from "./partition-map.js";
import { metaRoutes } from "./routes.js";
import { systemClock, type Clock } from "./store/clock.js";
import { EmbeddedMetaStore } from "./store/embedded-meta-store.js";
import { EtcdMetaStore } from "./store/etcd-meta-store.js";
import type { MetaStore } from "./store/meta-store.js";
import { TrackedMetaStore } from "./store/tracked-store.js";

export interface MetaDeps {
  readonly logger: Logger;
  /** One registry per process; a fresh one when absent. */
  readonly registry?: Registry;
  /** The journal DDL entries are appended to; a gRPC client to `config.journalUrl` when absent. */
  readonly journal?: Client<typeof JournalService>;
  /** The store; the embedded one at <data-dir>/meta/meta.sqlite when absent. A store passed in is not closed by stop(). */
  readonly store?: MetaStore;
  /** Clock of the embedded store (lease expiry) and of the failover controller; the system clock when absent. */
  readonly clock?: Clock;
  /** Client of the journal node at an address (the partition map asks it for its partitions); gRPC when absent. */
  readonly journalClient?: (address: string) => Client<typeof JournalService>;
  /** Client of the storage node at an address (the failover controller asks which replicas serve); gRPC when absent. */
  readonly storageClient?: (address: string) => Client<typeof StorageService>;
}

export interface RunningMeta {
  readonly catalog: Catalog;
  /** The failover controller; undefined with --no-failover. */
  readonly failover: FailoverController | undefined;
  /** The journal partition map controller. */
  readonly partitionMap: PartitionMapController;
  readonly server: RpcServer;
  readonly url: string;
  /** Graceful stop: end watch streams, stop accepting, drain, stop the catalog, close the store. */
  stop(): Promise<void>;
}

export async function start(config: MetaConfig, deps: MetaDeps): Promise<RunningMeta> {
  const { logger } = deps;
  const registry = deps.registry ?? createMetrics();
  const metrics = createMetaMetrics(registry);
  const clock = deps.clock ?? systemClock;
  let store: MetaStore;
  let ownedStore: MetaStore | undefined;
  let describe = "the embedded store";
  if (deps.store !== undefined) {
    store = deps.store;
    if (store instanceof EtcdMetaStore) describe = `etcd at ${store.endpoints}`;
  } else if (config.store === "etcd") {
    if (config.etcdEndpoints.length === 0) throw new InvalidArgumentError("--store etcd needs --etcd-endpoints (e.g. http://127.0.0.1:2379)");
    ownedStore = new EtcdMetaStore({ endpoints: config.etcdEndpoints, logger: logger.child({ component: "meta-store" }) });
    store = ownedStore;
    describe = `etcd at ${config.etcdEndpoints.join(",")}`;
  } else {
    ownedStore = EmbeddedMetaStore.open({
      path: join(config.dataDir, "meta", "meta.sqlite"),
      historyRevisions: config.historyRevisions,
      logger: logger.child({ component: "meta-store" }),
      ...(deps.clock ? { clock: deps.clock } : {}),
    });
    store = ownedStore;
  }
  // Every component reads the store through this wrapper: an unreachable store gives one
  // clear UNAVAILABLE message, and the failover controller learns when outages end.
  const tracked = new TrackedMetaStore(store, {
    describe,
    clock,
    onChange: (reachable) =>
      reachable
        ? logger.info("the metadata store answers again", { store: describe })
        : logger.warn("the metadata store is unreachable: topology changes fail with UNAVAILABLE, the cached catalog is served", { store: describe }),
  });
  const sessions = deps.journal === undefined ? new Http2SessionManager(config.journalUrl) : undefined;
  const journal =
    deps.journal ?? createClient(JournalService, createGrpcTransport({ baseUrl: config.journalUrl, ...(sessions ? { sessionManager: sessions } : {}) }));
  const release = async (): Promise<void> => {
    sessions?.abort();
    await ownedStore?.close();
  };

  let catalog: Catalog;
  try {
    catalog = await Catalog.open({
      store: tracked,
      journal: journalDdl(journal, { attemptTimeoutMs: config.ddlAttemptTimeoutMs }),
      partitions: config.partitions,
      journalAddress: config.journalUrl,
      logger,
      defaultNodeLeaseTtlMs: config.nodeLeaseTtlMs,
      maxCollections: config.maxCollections,
      maxNodes: config.maxNodes,
      maxWatchStreams: config.maxWatchStreams,
      watchCoalesceMs: config.watchCoalesceMs,
      ddlRetryBudgetMs: config.ddlRetryBudgetMs,
      reconcileIntervalMs: config.reconcileIntervalMs,
      observer: metrics.observer,
    });
  } catch (e) {
    await release();
    throw e;
  }
  const failover = config.failover
    ? new FailoverController({
        store: tracked,
        keys: catalog.keys,
        logger: logger.child({ component: "failover" }),
        clock,
        intervalMs: config.failoverIntervalMs,
        graceMs: config.failoverGraceMs,
        // The default TTL; a node registered with a longer one gets its own (failover.ts).
        recoveryGraceMs: config.nodeLeaseTtlMs,
        health: () => tracked.health,
        ...(deps.storageClient ? { storageClient: deps.storageClient } : {}),
        observer: metrics.failoverObserver,
      })
    : undefined;
  failover?.start(catalog);
  const partitionMap = new PartitionMapController({
    store: tracked,
    keys: catalog.keys,
    logger: logger.child({ component: "partition-map" }),
    clock,
    partitions: config.partitions,
    intervalMs: config.partitionMapIntervalMs,
    ...(deps.journalClient ? { journalClient: deps.journalClient } : {}),
    observer: metrics.partitionMapObserver,
  });
  partitionMap.start(catalog);
  metrics.bind(catalog, { health: () => tracked.health, ...(failover ? { failover } : {}) });

  let server: RpcServer;
  try {
    server = await startRpcServer({
      routes: metaRoutes(createMetaServiceImpl(catalog)),
      host: config.host,
      port: config.port,
      logger,
      registry,
      ready: () => catalog.ready,
      readMaxBytes: config.readMaxBytes,
    });
  } catch (e) {
    await partitionMap.close();
    await failover?.close();
    await catalog.close();
    await release();
    throw e;
  }

  let stopping: Promise<void> | undefined;
  return {
    catalog,
    failover,
    partitionMap,
    server,
    url: server.url,
    stop() {
      stopping ??= (async () => {
        // Watch streams never end by themselves; end them first so the drain below only
        // waits for unary calls.
        catalog.endWatchStreams();
        await server.close(config.shutdownGraceMs);
        await failover?.close();
        await partitionMap.close();
        await catalog.close();
        await release();
      })();
      return stopping;
    },
  };
}
