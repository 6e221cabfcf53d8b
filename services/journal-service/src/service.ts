// start(config, deps): the journal service as a value, so that tests and the standalone
// process can run it in-process, and main.ts stays a thin composition root.
import type { Registry } from "prom-client";
import { createClient, type Client } from "@connectrpc/connect";
import { internalGrpcTransport, keepRegistered, type Registration } from "@vecraft/meta-client";
import { MetaService, NodeRole } from "@vecraft/rpc";
import { createMetrics, startRpcServer, type Logger, type RpcServer } from "@vecraft/common";
import type { PhysicalClock } from "@vecraft/hlc";
import type { JournalConfig } from "./config.js";
import { Journal } from "./journal.js";
import { createJournalServiceImpl } from "./journal-service.js";
import type { LogFileSystem } from "./log/file-system.js";
import { createJournalMetrics } from "./metrics.js";
import { journalRoutes } from "./routes.js";

export interface JournalDeps {
  readonly logger: Logger;
  /** One registry per process; a fresh one when absent. */
  readonly registry?: Registry;
  /** What to do when a write or fsync fails; default: log and exit the process. */
  readonly onFatal?: (err: Error) => void;
  readonly fs?: LogFileSystem;
  readonly clock?: PhysicalClock;
  /** The meta-manager to register with; from `config.metaUrl` when absent (empty: none). */
  readonly meta?: Client<typeof MetaService>;
}

export interface RunningJournal {
  readonly journal: Journal;
  readonly server: RpcServer;
  readonly url: string;
  /** The lease registration (role JOURNAL); undefined when not registering. */
  readonly registration: Registration | undefined;
  /** Graceful stop: not ready, stop accepting, drain, flush, close files. */
  stop(): Promise<void>;
}

export async function start(config: JournalConfig, deps: JournalDeps): Promise<RunningJournal> {
  const { logger } = deps;
  const registry = deps.registry ?? createMetrics();
  const metrics = createJournalMetrics(registry);
  const onFatal =
    deps.onFatal ??
    ((err: Error): void => {
      // PostgreSQL's lesson: after a failed fsync the page cache cannot be trusted, and
      // retrying can report success for lost data. Stop; recovery rescans the log.
      logger.error("fatal journal write failure; exiting", { err });
      process.exit(70);
    });
  const journal = await Journal.open({
    dataDir: config.dataDir,
    nodeId: config.nodeId,
    partitions: config.partitions,
    segmentBytes: config.segmentBytes,
    maxBatchBytes: config.maxBatchBytes,
    tickIntervalMs: config.tickIntervalMs,
    maxClockOffsetMs: config.maxClockOffsetMs,
    dedup: { windowBatches: config.dedupWindowBatches, windowEntries: config.dedupWindowEntries, maxProducers: config.dedupMaxProducers },
    logger,
    onFatal,
    observer: (p) => metrics.observer(p),
    ...(deps.fs ? { fs: deps.fs } : {}),
    ...(deps.clock ? { clock: deps.clock } : {}),
  });
  metrics.bind(journal);
  const impl = createJournalServiceImpl(journal, metrics, {
    maxBatchEntries: config.maxBatchEntries,
    subscribeBatchEntries: config.subscribeBatchEntries,
    subscribeBatchBytes: config.subscribeBatchBytes,
    subscribeHeartbeatMs: config.subscribeHeartbeatMs,
    auditWaitMs: config.auditWaitMs,
  });
  let server: RpcServer;
  try {
    server = await startRpcServer({
      // Internal service on loopback: compression costs CPU and saves nothing.
      compression: false,
      routes: journalRoutes(impl),
      host: config.host,
      port: config.port,
      logger,
      registry,
      // Ready while the partitions are open and healthy; the registration is not a
      // condition (an etcd outage must not stop appends).
      ready: () => journal.healthy,
      readMaxBytes: config.readMaxBytes,
      writeMaxBytes: config.readMaxBytes,
    });
  } catch (e) {
    await journal.close();
    throw e;
  }
  const meta = deps.meta ?? (config.metaUrl ? createClient(MetaService, internalGrpcTransport({ baseUrl: config.metaUrl })) : undefined);
  const registration = meta
    ? keepRegistered(meta, { id: config.nodeId, address: config.advertiseUrl || server.url, roles: [NodeRole.JOURNAL] }, config.leaseTtlMs, logger)
    : undefined;
  let stopping: Promise<void> | undefined;
  return {
    journal,
    server,
    url: server.url,
    registration,
    stop() {
      stopping ??= (async () => {
        await registration?.stop();
        await server.close(config.shutdownGraceMs);
        await journal.close();
      })();
      return stopping;
    },
  };
}
