// A local multi-process cluster for integration and fault tests: the launcher behind
// `vecraft cluster up` (services/cli/src/cluster) on a temporary data directory, with a
// @vecraft/client per gateway and helpers to kill -9, restart, and stop/start etcd.
// etcd comes from scripts/ensure-etcd.mjs's install (`pnpm test` installs Debian's
// etcd-server); without one the test FAILS with what to install, never skips.
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createVecraftClient, type RecordInput, type VecraftClient, type VecraftClientOptions } from "@vecraft/client";
import { StorageService } from "@vecraft/rpc";
import { findEtcd, startCluster, type ClusterEvent, type ClusterOptions, type ClusterProcess, type RunningCluster } from "@vecraft/cli";
import { repoRoot } from "./server-process.js";

export interface TestCluster {
  readonly cluster: RunningCluster;
  readonly dataDir: string;
  /** Public API URLs, one per gateway. */
  readonly gateways: readonly string[];
  /** One client per gateway (gRPC), each with its own session token. */
  readonly clients: readonly VecraftClient[];
  /** A new client of gateway `i` (e.g. with a session token carried over from another). */
  client(i: number, options?: Omit<VecraftClientOptions, "baseUrl">): VecraftClient;
  process(name: string): ClusterProcess;
  /** kill -9 and wait until it is gone. */
  kill9(name: string): Promise<void>;
  /** Starts it again (same ports, same data directory) and waits until ready. */
  restart(name: string): Promise<void>;
  /** SIGTERM etcd (its data stays); throws for an external etcd. */
  stopEtcd(): Promise<void>;
  /** Starts etcd again on the same ports and data. */
  startEtcd(): Promise<void>;
  /** Processes that died without being asked to, as the launcher reported them. */
  readonly unexpectedExits: readonly Extract<ClusterEvent, { type: "exited" }>[];
  /** Stops everything and removes the data directory (kept when KEEP_CLUSTER_DATA is set). */
  stop(): Promise<void>;
}

const SERVICES = ["meta-manager", "journal-service", "storage-node", "query-processor", "api-gateway", "cli"];

/** The services the launcher runs (services/<dir>/dist/main.js); keys of `extraArgs`. */
export type ClusterService = "meta-manager" | "journal-service" | "storage-node" | "query-processor" | "api-gateway";

export interface TestClusterOptions extends Partial<Omit<ClusterOptions, "dataDir" | "servicesDir" | "extraArgs">> {
  /**
   * Flags added to every process of a service (e.g. `{ "storage-node": ["--lease-ttl-ms=2000"] }`),
   * and per process name (`"storage-3"`) after those, so that the process's own win.
   */
  extraArgs?: Partial<Record<ClusterService | (string & {}), readonly string[]>>;
}

/** Fails (never skips) when the services are not built or etcd is missing. */
function checkPrerequisites(): void {
  const missing = SERVICES.map((s) => join(repoRoot, "services", s, "dist", "main.js")).filter((p) => !existsSync(p));
  if (missing.length > 0) throw new Error(`the cluster tests run the built services; missing ${missing.join(", ")}: run \`pnpm build\` first`);
  // Throws EtcdNotFoundError, whose message says what to install.
  findEtcd();
}

export async function startTestCluster(options: TestClusterOptions = {}): Promise<TestCluster> {
  checkPrerequisites();
  const dataDir = await mkdtemp(join(tmpdir(), "vecraft-cluster-"));
  const unexpectedExits: Extract<ClusterEvent, { type: "exited" }>[] = [];
  const { extraArgs, ...launcherOptions } = options;
  let cluster: RunningCluster;
  try {
    cluster = await startCluster({
      logLevel: "warn",
      // A failed test should not wait 15 s per process for a drain.
      stopGraceMs: 5_000,
      ...launcherOptions,
      dataDir,
      ...(extraArgs !== undefined
        ? { extraArgs: Object.fromEntries(Object.entries(extraArgs).filter((e): e is [string, readonly string[]] => e[1] !== undefined)) }
        : {}),
      onEvent: (e) => {
        if (e.type === "exited") {
          unexpectedExits.push(e);
          process.stderr.write(`cluster: ${e.name} exited unexpectedly (code ${e.code}, signal ${e.signal}); last lines of ${e.logFile}:\n${e.tail}\n`);
        }
        options.onEvent?.(e);
      },
    });
  } catch (e) {
    await rm(dataDir, { recursive: true, force: true });
    throw e;
  }
  const gateways = cluster.endpoints.gateways;
  const made: VecraftClient[] = [];
  const client = (i: number, opts: Omit<VecraftClientOptions, "baseUrl"> = {}): VecraftClient => {
    const url = gateways[i];
    if (url === undefined) throw new RangeError(`no gateway ${i} (have ${gateways.length})`);
    const c = createVecraftClient({ baseUrl: url, ...opts });
    made.push(c);
    return c;
  };
  const clients = gateways.map((_, i) => client(i));
  const etcd = (): ClusterProcess => {
    const p = cluster.processes.find((x) => x.role === "etcd");
    if (p === undefined) throw new Error("this cluster uses an external etcd");
    return p;
  };
  return {
    cluster,
    dataDir,
    gateways,
    clients,
    client,
    process: (name) => cluster.process(name),
    kill9: (name) => cluster.process(name).kill("SIGKILL"),
    restart: (name) => cluster.process(name).restart(),
    stopEtcd: () => etcd().stop(),
    startEtcd: () => etcd().restart(),
    unexpectedExits,
    async stop() {
      for (const c of made) c.close();
      await cluster.stop();
      if (process.env["KEEP_CLUSTER_DATA"] === undefined) await rm(dataDir, { recursive: true, force: true });
      else process.stderr.write(`cluster data and logs kept in ${dataDir}\n`);
    },
  };
}

/**
 * Calls `probe` until it returns a value other than undefined, every `everyMs`; throws
 * after `timeoutMs` with `what` and the last value `describe` gives (for the test's message).
 */
export async function poll<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  { timeoutMs = 60_000, everyMs = 200, describe }: { timeoutMs?: number; everyMs?: number; describe?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      // A probe may fail while the cluster heals (e.g. a node restarting): try again.
      lastError = e;
    }
    if (Date.now() > deadline) {
      const last = describe?.() ?? (lastError instanceof Error ? `last error: ${lastError.message}` : "");
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last !== "" ? `; ${last}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A StorageService client of one storage node (for reading one replica directly). */
export function storageClient(url: string): Client<typeof StorageService> {
  return createClient(StorageService, createGrpcTransport({ baseUrl: url }));
}

/** The JSON log lines of a process's log file from byte `from` on (non-JSON lines skipped). */
export function logLines(file: string, from = 0): Record<string, unknown>[] {
  const text = readFileSync(file).subarray(from).toString("utf8");
  const out: Record<string, unknown>[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // A line cut by kill -9 mid-write.
    }
  }
  return out;
}

/** The sum of a Prometheus counter or gauge at `url`/metrics over the series whose labels include `labels`. */
export async function metricSum(url: string, name: string, labels: Readonly<Record<string, string>> = {}): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = m[2] ?? "";
    if (Object.entries(labels).every(([k, v]) => have.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

/** mulberry32: a seeded PRNG, so that every run sees the same data. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` records `<prefix><i>` with seeded random vectors of `dim` in [-1, 1). */
export function randomRecords(n: number, dim: number, seed: number, prefix: string): RecordInput[] {
  const rand = prng(seed);
  return Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, vector: Array.from({ length: dim }, () => rand() * 2 - 1), metadata: { n: i } }));
}

/**
 * extraArgs for a cluster that notices dead storage nodes soon: `leaseMs` node leases,
 * and a failover controller with a 1 s grace and 1 s safety-net passes.
 */
export function fastFailover(leaseMs: number): Record<"storage-node" | "meta-manager", string[]> {
  return {
    "storage-node": [`--lease-ttl-ms=${leaseMs}`],
    // The meta-manager waits a lease TTL after its start (and after a store outage) before any node counts as dead.
    "meta-manager": [`--node-lease-ttl-ms=${leaseMs}`, "--failover-grace-ms=1000", "--failover-interval-ms=1000"],
  };
}
