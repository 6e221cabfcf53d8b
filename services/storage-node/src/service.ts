// start(config, deps): a storage node as a value (tests, standalone), main.ts wraps it.
import type { Registry } from "prom-client";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createMetrics, startRpcServer, UnavailableError, type Logger, type RpcServer } from "@vecraft/common";
import { JournalService, MetaService, NodeRole } from "@vecraft/rpc";
import { keepRegistered, type Registration } from "./registration.js";
import type { StorageConfig } from "./config.js";
import { createFilterCompiler } from "./filters.js";
import { createStorageMetrics } from "./metrics.js";
import { StorageNode } from "./node.js";
import { storageRoutes } from "./routes.js";
import { createStorageServiceImpl } from "./storage-service.js";

export interface StorageDeps {
  readonly logger: Logger;
  readonly registry?: Registry;
  /** The journal; a gRPC client to config.journalUrl when absent. */
  readonly journal?: Client<typeof JournalService>;
  /** The meta-manager to register with; a gRPC client to config.metaUrl (when set) when absent. */
  readonly meta?: Client<typeof MetaService>;
  /** Placement when hostAll is false: does this node host (collection, shard)? */
  readonly hosts?: (collection: string, shard: number, partition: number) => boolean;
}

export interface RunningStorage {
  readonly node: StorageNode;
  readonly server: RpcServer;
  readonly url: string;
  stop(): Promise<void>;
}

export async function start(config: StorageConfig, deps: StorageDeps): Promise<RunningStorage> {
  const { logger } = deps;
  const registry = deps.registry ?? createMetrics();
  const metrics = createStorageMetrics(registry);
  const journal = deps.journal ?? createClient(JournalService, createGrpcTransport({ baseUrl: config.journalUrl }));
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
    hosts: config.hostAll ? () => true : (deps.hosts ?? (() => false)),
    exactThreshold: config.exactThreshold,
    checkpointEveryWrites: config.checkpointEveryWrites,
    subscribeBatchEntries: config.subscribeBatchEntries,
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
  try {
    await node.start();
  } catch (e) {
    await server.close(0);
    await node.close();
    throw e;
  }
  const meta = deps.meta ?? (config.metaUrl ? createClient(MetaService, createGrpcTransport({ baseUrl: config.metaUrl })) : undefined);
  const registration: Registration | undefined = meta
    ? keepRegistered(meta, { id: config.nodeId, address: config.advertiseUrl || server.url, roles: [NodeRole.STORAGE] }, config.leaseTtlMs, logger)
    : undefined;
  let stopping: Promise<void> | undefined;
  return {
    node,
    server,
    url: server.url,
    stop() {
      stopping ??= (async () => {
        await registration?.stop();
        await server.close(config.shutdownGraceMs);
        await node.close();
      })();
      return stopping;
    },
  };
}
