// The wiring of a local cluster in one place: which processes exist, in which order they
// start, and the flags each role gets. Adjust a service's flags here and nowhere else.

/** The kinds of process of a local cluster, in start order (stop is the reverse). */
export const ROLES = ["etcd", "meta", "journal", "storage", "query", "gateway"] as const;
export type Role = (typeof ROLES)[number];
export type ServiceRole = Exclude<Role, "etcd">;

/** The directory under services/ of each role's `dist/main.js`. */
export const SERVICE_DIR: Readonly<Record<ServiceRole, string>> = {
  meta: "meta-manager",
  journal: "journal-service",
  storage: "storage-node",
  query: "query-processor",
  gateway: "api-gateway",
};

/** One planned process: what the launcher starts (and restarts with the same values). */
export interface ProcessPlan {
  /** Unique: "etcd", "meta-manager", "journal", "storage-0", "query-1", "gateway-0". */
  readonly name: string;
  readonly role: Role;
  /** Position among the processes of its role. */
  readonly index: number;
  /** The node id it registers as (etcd: its member name). */
  readonly nodeId: string;
  readonly port: number;
  /** etcd only: the peer port. */
  readonly peerPort?: number;
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** Its own data directory (none for stateless roles). */
  readonly dataDir: string | undefined;
}

/** Where everything is: what the roles' flags point at. */
export interface Topology {
  readonly etcdEndpoints: readonly string[];
  readonly metaUrl: string;
  readonly journalUrl: string;
  readonly queryUrls: readonly string[];
  readonly partitions: number;
  readonly logLevel: string;
}

export interface Flag {
  /** Kebab-case, without the dashes. */
  readonly name: string;
  readonly value: string;
}

const f = (name: string, value: string | number | boolean): Flag => ({ name, value: String(value) });

/** Every service: loopback, its port, the log level. */
function common(p: ProcessPlan, t: Topology): Flag[] {
  return [f("host", "127.0.0.1"), f("port", p.port), f("log-level", t.logLevel)];
}

/** The table: role -> flags. */
export const ROLE_FLAGS: Readonly<Record<ServiceRole, (p: ProcessPlan, t: Topology) => Flag[]>> = {
  meta: (p, t) => [
    ...common(p, t),
    f("store", "etcd"),
    f("etcd-endpoints", t.etcdEndpoints.join(",")),
    f("partitions", t.partitions),
    f("journal-url", t.journalUrl),
    f("data-dir", p.dataDir ?? ""),
  ],
  journal: (p, t) => [
    ...common(p, t),
    f("data-dir", p.dataDir ?? ""),
    f("partitions", t.partitions),
    f("node-id", p.nodeId),
    f("meta-url", t.metaUrl),
    f("advertise-url", p.url),
  ],
  storage: (p, t) => [
    ...common(p, t),
    f("node-id", p.nodeId),
    f("data-dir", p.dataDir ?? ""),
    f("journal-url", t.journalUrl),
    f("meta-url", t.metaUrl),
    f("advertise-url", p.url),
    // Follow the catalog's placements (replication_factor), not every shard.
    f("host-all", false),
  ],
  query: (p, t) => [...common(p, t), f("journal-url", t.journalUrl), f("meta-url", t.metaUrl), f("node-id", p.nodeId), f("advertise-url", p.url)],
  gateway: (p, t) => [
    ...common(p, t),
    f("journal-url", t.journalUrl),
    f("meta-url", t.metaUrl),
    // Gateways spread calls over the alive query processors of the catalog; this one is
    // the fallback when the catalog lists none.
    f("query-url", t.queryUrls[p.index % Math.max(1, t.queryUrls.length)] ?? ""),
    f("node-id", p.nodeId),
    f("advertise-url", p.url),
  ],
};

/** The command-line arguments of a service process. */
export function serviceArgs(p: ProcessPlan & { role: ServiceRole }, t: Topology): string[] {
  return ROLE_FLAGS[p.role](p, t).map((flag) => `--${flag.name}=${flag.value}`);
}

/** etcd's arguments: one member on loopback with its own data directory. */
export function etcdArgs(p: ProcessPlan): string[] {
  const peer = `http://127.0.0.1:${p.peerPort ?? 0}`;
  return [
    `--name=${p.nodeId}`,
    `--data-dir=${p.dataDir ?? ""}`,
    `--listen-client-urls=${p.url}`,
    `--advertise-client-urls=${p.url}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${p.nodeId}=${peer}`,
    "--initial-cluster-state=new",
    "--logger=zap",
    "--log-level=warn",
  ];
}
