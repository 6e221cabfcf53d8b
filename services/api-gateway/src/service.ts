// start(config, deps): the gateway as a value, so that tests and the standalone process
// can run it in-process, and main.ts stays a thin composition root.
import { readFileSync } from "node:fs";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import type { Registry } from "prom-client";
import { createMetrics, startRpcServer, type Logger, type RpcServer } from "@vecraft/common";
import { internalGrpcTransport, keepRegistered, type Registration } from "@vecraft/meta-client";
import { JournalService, MetaService, NodeRole, QueryService, StorageService } from "@vecraft/rpc";
import { Audit } from "./audit.js";
import { KeyRing, loadApiKeysFile, type ApiKeySpec } from "./auth.js";
import { CatalogCache } from "./catalog.js";
import { QueryRouter } from "./query-router.js";
import { Collections } from "./collections.js";
import type { GatewayConfig } from "./config.js";
import { createGatewayServiceImpl } from "./gateway-service.js";
import { accessInterceptor, validationMetricsInterceptor } from "./interceptors.js";
import { createGatewayMetrics } from "./metrics.js";
import { RateLimiter } from "./rate-limit.js";
import { Reader } from "./reads.js";
import { gatewayRoutes } from "./routes.js";
import { StoragePool, type StorageClientFactory } from "./storage.js";
import { Writer } from "./writes.js";

export interface GatewayDeps {
  readonly logger: Logger;
  /** One registry per process; a fresh one when absent. */
  readonly registry?: Registry;
  /** Clients of the internal services; created from the URLs in the config when absent. */
  readonly meta?: Client<typeof MetaService>;
  readonly journal?: Client<typeof JournalService>;
  /** A fixed QueryService client; when absent, reads are routed over the catalog's query processors. */
  readonly query?: Client<typeof QueryService>;
  /** The transport to a query processor's URL (routing); gRPC when absent. */
  readonly queryTransport?: (url: string) => Transport;
  /** A StorageService client for a node's address (from the catalog). */
  readonly storage?: StorageClientFactory;
  /** API keys; when absent they come from `config.apiKeysFile` (none: the gateway is open). */
  readonly apiKeys?: readonly ApiKeySpec[];
  /** Milliseconds for the rate limiters; default performance.now. */
  readonly now?: () => number;
}

export interface RunningGateway {
  readonly server: RpcServer;
  readonly url: string;
  readonly catalog: CatalogCache;
  readonly registration: Registration;
  /** Graceful stop: not ready, stop accepting, drain within the grace period, close the catalog watch. */
  stop(): Promise<void>;
}

/** Largest message exchanged with internal services (search answers with vectors can be large). */
const INTERNAL_MAX_BYTES = 256 * 1024 * 1024;

function internalTransport(baseUrl: string): Transport {
  return internalGrpcTransport({
    baseUrl,
    readMaxBytes: INTERNAL_MAX_BYTES,
    writeMaxBytes: INTERNAL_MAX_BYTES,
    pingIntervalMs: 15_000,
    pingTimeoutMs: 10_000,
    idleConnectionTimeoutMs: 5 * 60_000,
    // Node's default HTTP/2 session memory (10 MiB) makes the session refuse new streams
    // (NGHTTP2_ENHANCE_YOUR_CALM) once a few large appends are queued on it; the
    // benchmark hit it with 64 concurrent 100-entry appends.
    nodeOptions: { maxSessionMemory: 128 },
  });
}

export async function start(config: GatewayConfig, deps: GatewayDeps): Promise<RunningGateway> {
  const { logger } = deps;
  const registry = deps.registry ?? createMetrics();
  const metrics = createGatewayMetrics(registry);

  if ((config.tlsCertFile === undefined) !== (config.tlsKeyFile === undefined)) {
    throw new Error("TLS needs both --tls-cert-file and --tls-key-file");
  }
  const tls =
    config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined
      ? { cert: readFileSync(config.tlsCertFile), key: readFileSync(config.tlsKeyFile) }
      : undefined;
  const apiKeys = deps.apiKeys ?? (config.apiKeysFile !== undefined ? loadApiKeysFile(config.apiKeysFile) : []);
  const keys = new KeyRing(apiKeys);
  if (keys.open) {
    logger.warn("no API keys configured: the gateway is open and every caller is the anonymous admin");
  }
  if (tls === undefined && config.host !== "127.0.0.1" && config.host !== "::1" && config.host !== "localhost") {
    logger.warn("serving plaintext on a non-loopback interface: configure --tls-cert-file and --tls-key-file", { host: config.host });
  }
  const limiter = new RateLimiter(apiKeys, { requestsPerSecond: config.defaultRequestsPerSecond, bytesPerSecond: config.defaultBytesPerSecond }, deps.now);

  const meta = deps.meta ?? createClient(MetaService, internalTransport(config.metaUrl));
  const journal = deps.journal ?? createClient(JournalService, internalTransport(config.journalUrl));
  const storageFactory: StorageClientFactory = deps.storage ?? ((address) => createClient(StorageService, internalTransport(address)));

  const catalog = new CatalogCache(meta, logger.child({ component: "catalog" }), metrics, { fetchTimeoutMs: config.downstreamTimeoutMs });
  const query =
    deps.query ??
    createClient(
      QueryService,
      new QueryRouter(catalog, metrics, logger.child({ component: "query-router" }), {
        fallbackUrl: config.queryUrl,
        transportFor: deps.queryTransport ?? internalTransport,
      }),
    );
  const pool = new StoragePool(storageFactory, config.maxStorageClients, metrics);
  catalog.onChange((c) => pool.retain(new Set(c.nodes.map((n) => n.address))));
  const statuses = { pool, catalog, logger, timeoutMs: config.storageStatusTimeoutMs };
  const common = { downstreamTimeoutMs: config.downstreamTimeoutMs };

  const impl = createGatewayServiceImpl({
    collections: new Collections({ meta, journal, catalog, statuses, logger, ...common }),
    writer: new Writer({
      journal,
      catalog,
      metrics,
      logger,
      limits: {
        maxBatchRecords: config.maxBatchRecords,
        maxBatchBytes: config.maxBatchBytes,
        maxMetadataBytes: config.maxMetadataBytes,
        ...common,
      },
    }),
    reader: new Reader({
      query,
      catalog,
      limits: { maxBatchRecords: config.maxBatchRecords, defaultStalenessMs: config.defaultStalenessMs, ...common },
    }),
    audit: new Audit({ journal, catalog, statuses, logger, defaultStalenessMs: config.defaultStalenessMs, ...common }),
    watch: {
      journal,
      catalog,
      metrics,
      logger,
      bufferChanges: config.watchBufferChanges,
      heartbeatMs: config.watchHeartbeatMs,
      ...common,
    },
    cluster: { journal, catalog, statuses, ...common },
  });

  catalog.start();
  let server: RpcServer;
  try {
    server = await startRpcServer({
      routes: gatewayRoutes(impl),
      host: config.host,
      port: config.port,
      logger,
      registry,
      // Not ready until the first catalog arrived: before that every request would re-read
      // it. The registration is not a condition: an etcd outage must not stop the gateway.
      ready: () => catalog.loaded,
      interceptors: [accessInterceptor({ keys, limiter, metrics, logger }), validationMetricsInterceptor(metrics)],
      maxTimeoutMs: config.maxTimeoutMs,
      readMaxBytes: config.maxRequestBytes,
      // Responses may carry up to maxBatchRecords vectors (Get, Search with vectors).
      writeMaxBytes: Math.max(config.maxRequestBytes, 64 * 1024 * 1024),
      // API.md's names: snake_case in JSON responses (requests accept both spellings).
      // Unknown fields and enum names are errors: a typo ("metdata") must not be dropped silently.
      jsonOptions: { useProtoFieldName: true, ignoreUnknownFields: false },
      ...(tls !== undefined ? { tls } : {}),
    });
  } catch (e) {
    await catalog.close();
    throw e;
  }
  const registration = keepRegistered(
    meta,
    { id: config.nodeId, address: config.advertiseUrl || server.url, roles: [NodeRole.GATEWAY] },
    config.leaseTtlMs,
    logger,
  );
  let stopping: Promise<void> | undefined;
  return {
    server,
    url: server.url,
    catalog,
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
