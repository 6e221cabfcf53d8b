// `vecraft cluster up`: a local cluster of separate processes until Ctrl-C (the launcher is
// in ../cluster); `vecraft cluster status`: the same tables as `vecraft status`.
import { intOpt, stringOpt } from "../args.js";
import { EtcdNotFoundError, startCluster, type ClusterEvent, type RunningCluster } from "../cluster/launcher.js";
import { CommandFailed, UsageError } from "../errors.js";
import { table } from "../format.js";
import type { CliIO } from "../io.js";
import type { CommandContext, CommandSpec, ParsedArgs } from "../registry.js";
import { printClusterStatus } from "./status.js";

export const DEFAULT_CLUSTER_DIR = "./data/cluster";
const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

function report(io: CliIO, e: ClusterEvent): void {
  switch (e.type) {
    case "starting":
      io.err(`starting ${e.name} on ${e.url}`);
      return;
    case "ready":
      io.err(`${e.name} ready (pid ${e.pid ?? "?"}, ${(e.ms / 1000).toFixed(1)} s)`);
      return;
    case "exited": {
      const how = e.signal !== null ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
      io.err(`WARNING: ${e.name} ${how}; the cluster runs on without it (log: ${e.logFile}). Its last lines:`);
      io.err(e.tail.replace(/^/gm, "  | "));
      return;
    }
    case "stopping":
      io.err(`stopping ${e.name}`);
      return;
    case "stopped":
      io.err("cluster stopped");
      return;
  }
}

function printEndpoints(io: CliIO, cluster: RunningCluster): void {
  const rows = cluster.processes.map((p) => [p.name, p.url, String(p.pid ?? "-")]);
  if (cluster.processes.every((p) => p.role !== "etcd")) rows.push(["etcd (external)", cluster.endpoints.etcd.join(","), "-"]);
  // Gateways first: they are what a user talks to.
  rows.sort((a, b) => Number(!a[0]!.startsWith("gateway")) - Number(!b[0]!.startsWith("gateway")));
  const first = cluster.endpoints.gateways[0] ?? "";
  io.out("Vecraft cluster is up. Public API (gRPC, gRPC-Web, Connect JSON) on the gateways:");
  for (const url of cluster.endpoints.gateways) io.out(`  ${url}`);
  io.out();
  io.out(table(["PROCESS", "URL", "PID"], rows));
  io.out();
  io.out(`Data and logs: ${cluster.dataDir} (logs/<process>.log)`);
  io.out("Try:");
  io.out(`  curl -s -H 'content-type: application/json' -d '{}' ${first}/vecraft.v1.VecraftService/GetClusterStatus`);
  io.out(`  pnpm vecraft cluster status --url ${first}`);
  io.out("Ctrl-C stops the cluster.");
}

function waitForAbort(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

async function up(ctx: CommandContext, args: ParsedArgs): Promise<number> {
  const logLevel = stringOpt(args, "log-level") ?? "info";
  const level = LOG_LEVELS.find((l) => l === logLevel);
  if (level === undefined) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(logLevel)}`);
  const etcdEndpoints = (stringOpt(args, "etcd-endpoints") ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  for (const e of etcdEndpoints) {
    if (!/^https?:\/\/[^/]+\/?$/.test(e)) throw new UsageError(`--etcd-endpoints: ${JSON.stringify(e)} is not a client URL like http://127.0.0.1:2379`);
  }
  const basePort = intOpt(args, "base-port", { min: 1, max: 65535 });
  const readyTimeoutMs = intOpt(args, "ready-timeout-ms", { min: 1 });
  const dataDir = stringOpt(args, "data-dir") ?? DEFAULT_CLUSTER_DIR;
  let cluster: RunningCluster;
  try {
    cluster = await startCluster({
      dataDir,
      partitions: intOpt(args, "partitions", { min: 1, max: 1024 }) ?? 3,
      storageNodes: intOpt(args, "storage-nodes", { min: 1, max: 100 }) ?? 3,
      queryProcessors: intOpt(args, "query-processors", { min: 1, max: 100 }) ?? 2,
      gateways: intOpt(args, "gateways", { min: 1, max: 100 }) ?? 2,
      ...(basePort !== undefined ? { basePort } : {}),
      ...(etcdEndpoints.length > 0 ? { etcdEndpoints } : {}),
      ...(readyTimeoutMs !== undefined ? { readyTimeoutMs } : {}),
      logLevel: level,
      env: { ...ctx.env },
      signal: ctx.signal,
      onEvent: (e) => report(ctx.io, e),
    });
  } catch (e) {
    if (e instanceof EtcdNotFoundError) throw new CommandFailed(e.message);
    if (ctx.signal.aborted) throw e;
    throw new CommandFailed(`the cluster did not start: ${e instanceof Error ? e.message : String(e)}`);
  }
  printEndpoints(ctx.io, cluster);
  await waitForAbort(ctx.signal);
  ctx.io.err("stopping the cluster (gateways first, etcd last)");
  await cluster.stop();
  return 0;
}

const clusterUp: CommandSpec = {
  path: ["cluster", "up"],
  summary: "Start a local cluster of separate processes (etcd, meta-manager, journal, storage, query, gateways) until Ctrl-C",
  description: [
    "Starts a local cluster on 127.0.0.1: etcd (from PATH, with its own data dir; or --etcd-endpoints),",
    "the meta-manager on etcd, the journal, storage nodes, query processors and gateways, each",
    "`node services/<service>/dist/main.js` with its log in <data-dir>/logs/<process>.log.",
    "Prints the endpoints (gateways first) once every process is ready, and stops everything",
    "in reverse order on Ctrl-C (SIGINT) or SIGTERM. Run it again on the same --data-dir to",
    "get the same data and ports back. Needs the services built (`pnpm build`) and etcd",
    "(Debian: `sudo apt-get install etcd-server`).",
  ].join("\n"),
  options: {
    "data-dir": { type: "string", value: "DIR", help: `where data and logs go (default ${DEFAULT_CLUSTER_DIR})` },
    partitions: { type: "string", value: "N", help: "journal partitions (default 3; fixed when the data dir is created)" },
    "storage-nodes": { type: "string", value: "N", help: "storage nodes (default 3)" },
    "query-processors": { type: "string", value: "N", help: "query processors (default 2)" },
    gateways: { type: "string", value: "N", help: "gateways (default 2)" },
    "base-port": {
      type: "string",
      value: "PORT",
      help: "consecutive ports from PORT: gateways, etcd client+peer, meta, journal, storage, query (default: the last run's, else free ports)",
    },
    "etcd-endpoints": { type: "string", value: "URLS", help: "use this etcd (comma-separated client URLs) instead of starting one" },
    "log-level": { type: "string", value: "LEVEL", help: "services' log level: debug, info (default), warn, error" },
    "ready-timeout-ms": { type: "string", value: "MS", help: "how long each process may take to become ready (default 30000)" },
  },
  examples: [
    "pnpm vecraft cluster up",
    "pnpm vecraft cluster up --data-dir /tmp/vc --storage-nodes 4 --base-port 8080",
    "pnpm vecraft cluster up --etcd-endpoints http://127.0.0.1:2379",
  ],
  run: up,
};

const clusterStatus: CommandSpec = {
  path: ["cluster", "status"],
  summary: "Show the cluster: nodes, journal partitions (commit offset), shard replicas (applied offset, lag, serving)",
  description: "The same as `vecraft status`: the gateway's GetClusterStatus as three tables (--json for the raw answer).",
  examples: ["vecraft cluster status --url http://127.0.0.1:8080", "vecraft cluster status --json"],
  run: printClusterStatus,
};

export const clusterCommands: readonly CommandSpec[] = [clusterUp, clusterStatus];
