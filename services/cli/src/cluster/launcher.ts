// A local cluster of separate processes on 127.0.0.1: etcd (from PATH, or an existing one
// via etcdEndpoints), the meta-manager on etcd, the journal, N storage nodes, M query
// processors and G gateways, each `node services/<svc>/dist/main.js` with its log in
// <data-dir>/logs/<name>.log. Used by `vecraft cluster up` and by the multi-process tests.
// The flags of each role are in roles.ts.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ManagedProcess, type ClusterProcess, type ExitInfo } from "./process.js";
import { ROLES, SERVICE_DIR, etcdArgs, serviceArgs, type ProcessPlan, type Role, type ServiceRole, type Topology } from "./roles.js";

export interface ClusterOptions {
  /** Everything the cluster writes: etcd/, journal/, storage-<i>/, logs/, cluster.json. */
  dataDir: string;
  /** Journal partitions (fixed when the data directory is created); default 3. */
  partitions?: number;
  /** Default 3. */
  storageNodes?: number;
  /** Default 2. */
  queryProcessors?: number;
  /** Default 2. */
  gateways?: number;
  /**
   * Consecutive ports from here: the gateways first (so the first gateway is at basePort),
   * then etcd (client, peer), meta-manager, journal, storage nodes, query processors.
   * Default: the ports of the last run on this data directory, else free ports.
   */
  basePort?: number;
  /** Use this etcd instead of starting one (comma-separated client URLs in the CLI). */
  etcdEndpoints?: readonly string[];
  /** The etcd binary; default $VECRAFT_ETCD_BIN, `etcd` on PATH, /usr/bin/etcd, /usr/local/bin/etcd. */
  etcdBin?: string;
  /** The directory holding <service>/dist/main.js; default this repository's services/. */
  servicesDir?: string;
  /** Services' --log-level; default info. */
  logLevel?: "debug" | "info" | "warn" | "error";
  /** How long one process may take to become ready; default 30 s. */
  readyTimeoutMs?: number;
  /** SIGKILL a process this long after SIGTERM; default 15 s (services drain for up to 10 s). */
  stopGraceMs?: number;
  /** Aborts the start (what was started is stopped). */
  signal?: AbortSignal;
  /** Progress and unexpected exits. */
  onEvent?: (event: ClusterEvent) => void;
  /** The environment of the children; default process.env (VECRAFT_* removed either way). */
  env?: NodeJS.ProcessEnv;
  /**
   * Flags added after the role table's: by service directory (`"storage-node"`: every
   * storage node) and then by process name (`"storage-2"`), so a process's own win.
   * Restarts keep them. Tests use it for short leases.
   */
  extraArgs?: Readonly<Record<string, readonly string[]>>;
}

export type ClusterEvent =
  | { readonly type: "starting"; readonly name: string; readonly url: string }
  | { readonly type: "ready"; readonly name: string; readonly url: string; readonly pid: number | undefined; readonly ms: number }
  | {
      /** A process exited that the launcher did not stop: the cluster runs on without it. */
      readonly type: "exited";
      readonly name: string;
      readonly code: number | null;
      readonly signal: NodeJS.Signals | null;
      readonly logFile: string;
      readonly tail: string;
    }
  | { readonly type: "stopping"; readonly name: string }
  | { readonly type: "stopped" };

export interface ClusterEndpoints {
  /** The public API, one URL per gateway (curl, `vecraft --url`, @vecraft/client). */
  readonly gateways: readonly string[];
  readonly query: readonly string[];
  readonly storage: readonly string[];
  readonly journal: string;
  readonly meta: string;
  readonly etcd: readonly string[];
}

export interface RunningCluster {
  readonly dataDir: string;
  readonly endpoints: ClusterEndpoints;
  /** Every process the launcher started, in start order (etcd absent when external). */
  readonly processes: readonly ClusterProcess[];
  /** The process with this name ("etcd", "meta-manager", "journal", "storage-0", "query-1", "gateway-0"). */
  process(name: string): ClusterProcess;
  byRole(role: Role): ClusterProcess[];
  /** SIGTERM every process in reverse start order (one role at a time), SIGKILL after the grace. */
  stop(): Promise<void>;
}

export class EtcdNotFoundError extends Error {
  override name = "EtcdNotFoundError";
  constructor(tried: readonly string[]) {
    super(
      `no etcd server binary found (tried ${tried.join(", ")}). Install Debian's etcd-server ` +
        "(`sudo apt-get install etcd-server`), set VECRAFT_ETCD_BIN, or pass --etcd-endpoints to use a running etcd.",
    );
  }
}

export class ClusterStartError extends Error {
  override name = "ClusterStartError";
}

/** The first etcd binary that answers `--version`; throws EtcdNotFoundError naming what to install. */
export function findEtcd(env: NodeJS.ProcessEnv = process.env): string {
  const candidates = [env["VECRAFT_ETCD_BIN"], "etcd", "/usr/bin/etcd", "/usr/local/bin/etcd"].filter((c): c is string => c !== undefined && c !== "");
  for (const c of candidates) {
    if (spawnSync(c, ["--version"], { encoding: "utf8" }).status === 0) return c;
  }
  throw new EtcdNotFoundError(candidates);
}

/** services/ of this repository: this file is services/cli/dist/cluster/launcher.js. */
export function defaultServicesDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

interface Counts {
  partitions: number;
  storage: number;
  query: number;
  gateway: number;
}

function positiveInt(name: string, value: number | undefined, fallback: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1 || v > max) throw new RangeError(`${name} must be an integer in [1, ${max}], got ${v}`);
  return v;
}

/** Names and ports of every process; the ports file keeps them stable across runs of one data dir. */
async function plan(options: ClusterOptions, counts: Counts, withEtcd: boolean): Promise<ProcessPlan[]> {
  const d = options.dataDir;
  type Draft = Omit<ProcessPlan, "port" | "url" | "peerPort"> & { needsPeer?: boolean };
  const drafts: Draft[] = [];
  const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
  for (const i of range(counts.gateway)) drafts.push({ name: `gateway-${i}`, role: "gateway", index: i, nodeId: `gateway-${i}`, dataDir: undefined });
  if (withEtcd) drafts.push({ name: "etcd", role: "etcd", index: 0, nodeId: "default", dataDir: join(d, "etcd"), needsPeer: true });
  drafts.push({ name: "meta-manager", role: "meta", index: 0, nodeId: "meta-0", dataDir: join(d, "meta") });
  drafts.push({ name: "journal", role: "journal", index: 0, nodeId: "journal-0", dataDir: join(d, "journal") });
  for (const i of range(counts.storage))
    drafts.push({ name: `storage-${i}`, role: "storage", index: i, nodeId: `storage-${i}`, dataDir: join(d, `storage-${i}`) });
  for (const i of range(counts.query)) drafts.push({ name: `query-${i}`, role: "query", index: i, nodeId: `query-${i}`, dataDir: undefined });

  const portsFile = join(d, "cluster.json");
  const previous = readPorts(portsFile);
  const used = new Set<number>();
  let next = options.basePort;
  const take = async (key: string): Promise<number> => {
    let port: number;
    if (next !== undefined) {
      port = next++;
      if (port > 65535) throw new RangeError(`--base-port ${options.basePort} leaves too few ports below 65536 for ${drafts.length + 1} ports`);
    } else {
      port = previous[key] ?? (await freePort());
      while (used.has(port)) port = await freePort();
    }
    used.add(port);
    return port;
  };
  const plans: ProcessPlan[] = [];
  for (const { needsPeer, ...draft } of drafts) {
    const port = await take(draft.name);
    const peerPort = needsPeer === true ? await take(`${draft.name}-peer`) : undefined;
    plans.push({ ...draft, port, url: `http://127.0.0.1:${port}`, ...(peerPort !== undefined ? { peerPort } : {}) });
  }
  const ports: Record<string, number> = {};
  for (const p of plans) {
    ports[p.name] = p.port;
    if (p.peerPort !== undefined) ports[`${p.name}-peer`] = p.peerPort;
  }
  writeFileSync(portsFile, JSON.stringify({ ports }, null, 2) + "\n");
  return plans;
}

function readPorts(path: string): Record<string, number> {
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as { ports?: Record<string, unknown> };
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(parsed.ports ?? {})) if (typeof v === "number") out[k] = v;
    return out;
  } catch {
    // First run on this data directory (or an unreadable file): pick new ports.
    return {};
  }
}

/** Fails with a clear message when a service is not built. */
function checkBuilt(servicesDir: string, roles: readonly ServiceRole[]): void {
  for (const role of roles) {
    const main = join(servicesDir, SERVICE_DIR[role], "dist", "main.js");
    if (!existsSync(main)) throw new ClusterStartError(`${main} does not exist: build the services first (\`pnpm build\`)`);
  }
}

/** The children's environment: no VECRAFT_* settings, so that only the flags configure them. */
function childEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith("VECRAFT_")));
}

/** Starts a local cluster; resolves once every process is ready (see the file header). */
export async function startCluster(options: ClusterOptions): Promise<RunningCluster> {
  const counts: Counts = {
    partitions: positiveInt("partitions", options.partitions, 3, 1024),
    storage: positiveInt("storageNodes", options.storageNodes, 3, 100),
    query: positiveInt("queryProcessors", options.queryProcessors, 2, 100),
    gateway: positiveInt("gateways", options.gateways, 2, 100),
  };
  const external = options.etcdEndpoints !== undefined && options.etcdEndpoints.length > 0;
  const env = childEnv(options.env ?? process.env);
  const etcdBin = external ? undefined : (options.etcdBin ?? findEtcd(options.env ?? process.env));
  const servicesDir = options.servicesDir ?? defaultServicesDir();
  const dataDir = resolve(options.dataDir);
  mkdirSync(join(dataDir, "logs"), { recursive: true });
  const serviceRoles = ROLES.filter((r): r is ServiceRole => r !== "etcd");
  checkBuilt(servicesDir, serviceRoles);
  const plans = await plan({ ...options, dataDir }, counts, !external);
  const byRole = (role: Role): ProcessPlan[] => plans.filter((p) => p.role === role);
  const one = (role: Role): ProcessPlan => byRole(role)[0]!;
  const topology: Topology = {
    etcdEndpoints: external ? [...(options.etcdEndpoints ?? [])] : [one("etcd").url],
    metaUrl: one("meta").url,
    journalUrl: one("journal").url,
    queryUrls: byRole("query").map((p) => p.url),
    partitions: counts.partitions,
    logLevel: options.logLevel ?? "info",
  };
  const emit = (e: ClusterEvent): void => options.onEvent?.(e);
  let stopping = false;
  const onExit = (p: ClusterProcess, info: ExitInfo): void => {
    if (info.expected || stopping) return;
    emit({ type: "exited", name: p.name, code: info.code, signal: info.signal, logFile: p.logFile, tail: p.logTail() });
  };
  const procOptions = { readyTimeoutMs: options.readyTimeoutMs ?? 30_000, stopGraceMs: options.stopGraceMs ?? 15_000, onExit };
  const processOf = (p: ProcessPlan): ManagedProcess => {
    const logFile = join(dataDir, "logs", `${p.name}.log`);
    if (p.role === "etcd") {
      return new ManagedProcess(
        {
          name: p.name,
          role: p.role,
          url: p.url,
          command: etcdBin ?? "etcd",
          args: etcdArgs(p),
          env,
          logFile,
          dataDir: p.dataDir,
          readyUrl: `${p.url}/health`,
          readyBody: /"health":\s*"true"/,
        },
        procOptions,
      );
    }
    const role = p.role;
    const main = join(servicesDir, SERVICE_DIR[role], "dist", "main.js");
    const extra = options.extraArgs ?? {};
    const args = [main, ...serviceArgs({ ...p, role }, topology), ...(extra[SERVICE_DIR[role]] ?? []), ...(extra[p.name] ?? [])];
    return new ManagedProcess(
      { name: p.name, role, url: p.url, command: process.execPath, args, env, logFile, dataDir: p.dataDir, readyUrl: `${p.url}/readyz` },
      procOptions,
    );
  };

  const started: ManagedProcess[] = [];
  // Start order: ROLES; the processes of one role start together. Stop is the reverse.
  const groups = ROLES.map((role) => byRole(role).map(processOf)).filter((g) => g.length > 0);
  const stopAll = async (): Promise<void> => {
    stopping = true;
    for (const group of [...groups].reverse()) {
      const live = group.filter((p) => p.running);
      for (const p of live) emit({ type: "stopping", name: p.name });
      await Promise.all(live.map((p) => p.stop()));
    }
    process.removeListener("exit", killAllNow);
    emit({ type: "stopped" });
  };
  // Last resort if the launcher itself exits without stop(): the children are in their
  // own process groups, so nothing else would end them.
  const killAllNow = (): void => {
    for (const p of started) p.killNow();
  };
  process.on("exit", killAllNow);
  try {
    for (const group of groups) {
      await Promise.all(
        group.map(async (p) => {
          emit({ type: "starting", name: p.name, url: p.url });
          const t0 = Date.now();
          started.push(p);
          await p.start(options.signal);
          emit({ type: "ready", name: p.name, url: p.url, pid: p.pid, ms: Date.now() - t0 });
        }),
      );
    }
  } catch (e) {
    await stopAll();
    throw e;
  }
  const all = groups.flat();
  let stopped: Promise<void> | undefined;
  return {
    dataDir,
    endpoints: {
      gateways: byRole("gateway").map((p) => p.url),
      query: byRole("query").map((p) => p.url),
      storage: byRole("storage").map((p) => p.url),
      journal: topology.journalUrl,
      meta: topology.metaUrl,
      etcd: topology.etcdEndpoints,
    },
    processes: all,
    process(name) {
      const p = all.find((x) => x.name === name);
      if (p === undefined) throw new RangeError(`no process named ${JSON.stringify(name)} (have ${all.map((x) => x.name).join(", ")})`);
      return p;
    },
    byRole: (role) => all.filter((p) => p.role === role),
    stop() {
      stopped ??= stopAll();
      return stopped;
    },
  };
}
