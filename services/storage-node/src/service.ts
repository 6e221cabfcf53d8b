// start(config, deps): a storage node as a value (tests, standalone), main.ts wraps it.
import type { Registry } from "prom-client";
import { createClient, type Client } from "@connectrpc/connect";

import { createMetrics, startRpcServer, UnavailableError, type Logger, type RpcServer } from "@vecraft/common";
import { JournalService, MetaService, NodeRole, type StorageService } from "@vecraft/rpc";
import { CatalogFollower, internalGrpcTransport, keepRegistered, type Registration } from "@vecraft/meta-client";
import type { StorageConfig } from "./config.js";
import { createFilterCompiler } from "./filters.js";
import { createStorageMetrics } from "./metrics.js";
import { StorageNode } from "./node.js";
import { PlacementFollower, type CatalogView } from "./placement.js";
import { storageRoutes } from "./routes.js";
import { createStorageServiceImpl } from "./storage-service.js";

export interface StorageDeps {
  readonly logger: Logger;
  readonly registry?: Registry;
  /** The journal; a gRPC client to config.journalUrl when absent. */
  readonly journal?: Client<typeof JournalService>;
  /** The meta-manager to register with; a gRPC client to config.metaUrl (when set) when absent. */
  readonly meta?: Client<typeof MetaService>;
  /**
   * The catalog to follow placements from when hostAll is false; a CatalogFollower of
   * `meta` when absent (none without a meta-manager: then only CREATE entries place shards).
   */
  readonly catalog?: CatalogView;
  /** Largest snapshot chunk to ask peers for (tests; 0: the peer's default). */
  readonly snapshotChunkBytes?: number;
  /** A StorageService client for a peer's address (tests; default: gRPC over HTTP/2). */
  readonly peerClient?: (address: string) => Client<typeof StorageService>;
  /** How long a new placement settles before it is bootstrapped (tests; see PlacementOptions). */
  readonly placementSettleMs?: number;
  /** Give up on a peer's snapshot stream after this long without a message (tests; default 30 s). */
  readonly snapshotIdleMs?: number;
}

export interface RunningStorage {
  readonly node: StorageNode;
  /** Set when the node follows catalog placements (hostAll false and a catalog). */
  readonly placement: PlacementFollower | undefined;
  readonly server: RpcServer;
  readonly url: string;
  stop(): Promise<void>;
}

export async function start(config: StorageConfig, deps: StorageDeps): Promise<RunningStorage> {
  const { logger } = deps;
  const registry = deps.registry ?? createMetrics();
  const metrics = createStorageMetrics(registry);
  const journal = deps.journal ?? createClient(JournalService, internalGrpcTransport({ baseUrl: config.journalUrl }));
  let partitions = config.partitions.map((p) => Number(p));
  if (partitions.length === 0) {
    const status = await journal.getPartitions({}, { timeoutMs: 30_000 });
    partitions = status.partitions.map((p) => p.partition);
  }
  const node = StorageNode.create({
    dataDir: config.dataDir,
    nodeId: config.nodeId,
    partitions,
    journal,
    logger,
    hostAll: config.hostAll,
    exactThreshold: config.exactThreshold,
    checkpointEveryWrites: config.checkpointEveryWrites,
    subscribeBatchEntries: config.subscribeBatchEntries,
    stats: metrics.stats,
    snapshotChunkBytes: deps.snapshotChunkBytes ?? 0,
    closeGraceMs: config.shutdownGraceMs,
    ...(deps.snapshotIdleMs !== undefined ? { snapshotIdleMs: deps.snapshotIdleMs } : {}),
  });
  metrics.bind(node);
  // Serve /metrics and /readyz while shard indexes are restored (a rebuild of a large
  // shard takes a while and its progress is in vecraft_storage_index_restore_rows);
  // reads answer UNAVAILABLE until the node has started.
  const nodeOf = (): StorageNode => {
    if (!node.started) throw new UnavailableError(`storage node ${config.nodeId} is starting: restoring shard indexes`);
    return node;
  };
  const impl = createStorageServiceImpl(nodeOf, createFilterCompiler(), { defaultWaitMs: config.defaultWaitMs, maxWaitMs: config.maxWaitMs }, metrics);
  let server: RpcServer;
  try {
    server = await startRpcServer({
      // Internal service on loopback: compression costs CPU and saves nothing.
      compression: false,
      routes: storageRoutes(impl),
      host: config.host,
      port: config.port,
      logger,
      registry,
      ready: () => node.started,
    });
  } catch (e) {
    await node.close();
    throw e;
  }
  // Take the lease as soon as the server listens, before the shards are opened: restoring
  // big indexes takes longer than the lease TTL, and a node whose lease expired has its
  // replicas moved away (and would then delete the data it just restored). Readiness
  // stays false, and reads answer UNAVAILABLE, until node.start() finished.
  const meta = deps.meta ?? (config.metaUrl ? createClient(MetaService, internalGrpcTransport({ baseUrl: config.metaUrl })) : undefined);
  const registration: Registration | undefined = meta
    ? keepRegistered(meta, { id: config.nodeId, address: config.advertiseUrl || server.url, roles: [NodeRole.STORAGE] }, config.leaseTtlMs, logger)
    : undefined;
  try {
    await node.start();
  } catch (e) {
    await registration?.stop();
    await server.close(0);
    await node.close();
    throw e;
  }
  // Placements are followed only once every registered replica is open (node.start
  // above), so that a replica this node still hosts is never re-bootstrapped or removed.
  let follower: CatalogFollower | undefined;
  let catalog = deps.catalog;
  if (!config.hostAll && !catalog && meta) {
    follower = new CatalogFollower(meta, logger);
    follower.start();
    catalog = follower;
  }
  const placement = !config.hostAll && catalog ? new PlacementFollower(node, catalog, {
          logger,
          ...(deps.peerClient ? { peerClient: deps.peerClient } : {}),
          ...(deps.placementSettleMs !== undefined ? { settleMs: deps.placementSettleMs } : {}),
        }) : undefined;
  placement?.start();
  let stopping: Promise<void> | undefined;
  return {
    node,
    placement,
    server,
    url: server.url,
    stop() {
      stopping ??= (async () => {
        await placement?.stop();
        await follower?.close();
        await registration?.stop();
        await server.close(config.shutdownGraceMs);
        await node.close();
      })();
      return stopping;
    },
  };
}
