// The catalog's layout in the MetaStore: key names and the JSON records stored under
// them. JSON (with the collection spec as base64 protobuf) so that an operator can read
// the catalog with `etcdctl get --prefix /vecraft/meta/` or sqlite3.
//
//   <root>cluster                  {"v":1,"partitions":N}            written once
//   <root>catalog/version          ""  every catalog change rewrites it: its modRevision
//                                      is the compare-and-swap token of the catalog
//   <root>collections/<name>       CollectionRecord
//   <root>nodes/<id>               NodeRecord                        no lease
//   <root>alive/<id>               the lease id                      attached to the lease
//   <root>partitions/<p>           JournalPartitionRecord            who serves journal partition p
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { DataLossError } from "@vecraft/common";
import { CollectionSchema, NodeRole, type Collection } from "@vecraft/rpc";
import type { PlacedShard } from "./placement.js";
import type { CallOptions, MetaStore, TxnRequest, TxnResult } from "./store/meta-store.js";

/** The default key root; a cluster sharing an etcd with others picks its own. */
export const DEFAULT_KEY_ROOT = "/vecraft/meta/";

export interface CatalogKeys {
  readonly root: string;
  readonly cluster: string;
  readonly version: string;
  readonly collections: string;
  readonly nodes: string;
  readonly alive: string;
  readonly partitions: string;
  collection(name: string): string;
  node(id: string): string;
  aliveNode(id: string): string;
  journalPartition(partition: number): string;
}

export function catalogKeys(root: string = DEFAULT_KEY_ROOT): CatalogKeys {
  if (!root.endsWith("/")) throw new RangeError(`the key root must end with "/", got ${JSON.stringify(root)}`);
  const k = {
    root,
    cluster: `${root}cluster`,
    version: `${root}catalog/version`,
    collections: `${root}collections/`,
    nodes: `${root}nodes/`,
    alive: `${root}alive/`,
    partitions: `${root}partitions/`,
  };
  return {
    ...k,
    collection: (name) => k.collections + name,
    node: (id) => k.nodes + id,
    aliveNode: (id) => k.alive + id,
    journalPartition: (p) => k.partitions + String(p),
  };
}

export type CollectionPhase = "creating" | "ready" | "dropping";

/** Who asked for a DDL change; copied into its journal entries. */
export interface DdlOrigin {
  readonly requestId: string;
  readonly principal: string;
}

export interface CollectionRecord {
  readonly state: CollectionPhase;
  readonly uid: string;
  /** The spec as created (created_ts 0, no stats). */
  readonly spec: Collection;
  readonly shards: readonly PlacedShard[];
  /** The ts of the create's DDL entry (max over partitions); 0 until READY. */
  readonly createdTs: bigint;
  readonly create: DdlOrigin;
  /** Set once a drop started. */
  readonly drop?: DdlOrigin;
}

export interface NodeRecord {
  readonly id: string;
  readonly roles: readonly NodeRole[];
  readonly address: string;
  readonly registeredAtMs: number;
  /**
   * The lease TTL granted at registration (ms). Absent in records written before it was
   * recorded: the meta-manager's default TTL applies to those.
   */
  readonly ttlMs?: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

interface CollectionJson {
  v: 1;
  state: CollectionPhase;
  uid: string;
  spec: string;
  shards: { shard: number; partition: number; replicas: string[] }[];
  createdTs: string;
  create: DdlOrigin;
  drop?: DdlOrigin;
}

export function encodeCollection(r: CollectionRecord): Uint8Array {
  const json: CollectionJson = {
    v: 1,
    state: r.state,
    uid: r.uid,
    spec: Buffer.from(toBinary(CollectionSchema, r.spec)).toString("base64"),
    shards: r.shards.map((s) => ({ shard: s.shard, partition: s.partition, replicas: [...s.replicas] })),
    createdTs: r.createdTs.toString(),
    create: { requestId: r.create.requestId, principal: r.create.principal },
    ...(r.drop ? { drop: { requestId: r.drop.requestId, principal: r.drop.principal } } : {}),
  };
  return enc.encode(JSON.stringify(json));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function origin(v: unknown): DdlOrigin | undefined {
  if (!isRecord(v) || typeof v.requestId !== "string" || typeof v.principal !== "string") return undefined;
  return { requestId: v.requestId, principal: v.principal };
}

function isNat(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Decodes a collection record; a malformed one is DataLoss (the catalog is the source of truth). */
export function decodeCollection(key: string, value: Uint8Array): CollectionRecord {
  const bad = (why: string): never => {
    throw new DataLossError(`catalog record ${key} is malformed: ${why}`);
  };
  let j: unknown;
  try {
    j = JSON.parse(dec.decode(value));
  } catch (e) {
    return bad(e instanceof Error ? e.message : String(e));
  }
  if (!isRecord(j) || j.v !== 1) return bad("not a version 1 record");
  if (j.state !== "creating" && j.state !== "ready" && j.state !== "dropping") return bad(`unknown state ${String(j.state)}`);
  if (typeof j.uid !== "string" || j.uid === "") return bad("no uid");
  if (typeof j.spec !== "string") return bad("no spec");
  if (typeof j.createdTs !== "string" || !/^[0-9]+$/.test(j.createdTs)) return bad("bad createdTs");
  const create = origin(j.create);
  if (!create) return bad("bad create origin");
  const drop = j.drop === undefined ? undefined : origin(j.drop);
  if (j.drop !== undefined && !drop) return bad("bad drop origin");
  if (!Array.isArray(j.shards)) return bad("no shards");
  const shards: PlacedShard[] = j.shards.map((s: unknown, i) => {
    if (!isRecord(s) || !isNat(s.shard) || !isNat(s.partition) || !Array.isArray(s.replicas) || !s.replicas.every((r) => typeof r === "string")) {
      return bad(`shards[${i}] is malformed`);
    }
    return { shard: s.shard, partition: s.partition, replicas: s.replicas };
  });
  let spec: Collection;
  try {
    spec = fromBinary(CollectionSchema, Buffer.from(j.spec, "base64"));
  } catch (e) {
    return bad(`spec: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { state: j.state, uid: j.uid, spec, shards, createdTs: BigInt(j.createdTs), create, ...(drop ? { drop } : {}) };
}

interface NodeJson {
  v: 1;
  id: string;
  roles: string[];
  address: string;
  registeredAtMs: number;
  ttlMs?: number;
}

export function encodeNode(n: NodeRecord): Uint8Array {
  const json: NodeJson = {
    v: 1,
    id: n.id,
    roles: n.roles.map((r) => NodeRole[r]),
    address: n.address,
    registeredAtMs: n.registeredAtMs,
    ...(n.ttlMs !== undefined ? { ttlMs: n.ttlMs } : {}),
  };
  return enc.encode(JSON.stringify(json));
}

export function decodeNode(key: string, value: Uint8Array): NodeRecord {
  const bad = (why: string): never => {
    throw new DataLossError(`node record ${key} is malformed: ${why}`);
  };
  let j: unknown;
  try {
    j = JSON.parse(dec.decode(value));
  } catch (e) {
    return bad(e instanceof Error ? e.message : String(e));
  }
  if (!isRecord(j) || j.v !== 1 || typeof j.id !== "string" || typeof j.address !== "string" || !isNat(j.registeredAtMs)) return bad("not a version 1 record");
  if (!Array.isArray(j.roles)) return bad("no roles");
  const roles = j.roles.map((r: unknown) => {
    const role = typeof r === "string" ? (NodeRole as unknown as Record<string, unknown>)[r] : undefined;
    return typeof role === "number" ? role : bad(`unknown role ${String(r)}`);
  });
  if (j.ttlMs !== undefined && !isNat(j.ttlMs)) return bad("bad ttlMs");
  return { id: j.id, roles, address: j.address, registeredAtMs: j.registeredAtMs, ...(isNat(j.ttlMs) ? { ttlMs: j.ttlMs } : {}) };
}

export interface ClusterRecord {
  readonly partitions: number;
}

export function encodeCluster(c: ClusterRecord): Uint8Array {
  return enc.encode(JSON.stringify({ v: 1, partitions: c.partitions }));
}

/** The parsed JSON, or undefined when it does not parse (callers report it like any other malformed record). */
function parseOrUndefined(value: Uint8Array): unknown {
  try {
    return JSON.parse(dec.decode(value));
  } catch {
    return undefined;
  }
}

export function decodeCluster(key: string, value: Uint8Array): ClusterRecord {
  const j = parseOrUndefined(value);
  if (!isRecord(j) || j.v !== 1 || !isNat(j.partitions) || j.partitions < 1) throw new DataLossError(`cluster record ${key} is malformed`);
  return { partitions: j.partitions };
}

/** Who serves one journal partition (partition-map.ts keeps these). */
export interface JournalPartitionRecord {
  readonly partition: number;
  /** Node id of the journal node leading it. */
  readonly leader: string;
  readonly epoch: number;
  /** Node ids of its replicas, sorted. */
  readonly replicas: readonly string[];
  /** The leader's RPC base URL. */
  readonly leaderAddress: string;
}

export function encodeJournalPartition(r: JournalPartitionRecord): Uint8Array {
  return enc.encode(
    JSON.stringify({ v: 1, partition: r.partition, leader: r.leader, epoch: r.epoch, replicas: [...r.replicas], leaderAddress: r.leaderAddress }),
  );
}

export function decodeJournalPartition(key: string, value: Uint8Array): JournalPartitionRecord {
  const j = parseOrUndefined(value);
  if (
    !isRecord(j) ||
    j.v !== 1 ||
    !isNat(j.partition) ||
    typeof j.leader !== "string" ||
    !isNat(j.epoch) ||
    !Array.isArray(j.replicas) ||
    !j.replicas.every((r) => typeof r === "string") ||
    typeof j.leaderAddress !== "string"
  ) {
    throw new DataLossError(`journal partition record ${key} is malformed`);
  }
  return { partition: j.partition, leader: j.leader, epoch: j.epoch, replicas: j.replicas, leaderAddress: j.leaderAddress };
}

export const EMPTY = new Uint8Array(0);

/**
 * Commits one catalog change: `change` is applied only if its compares hold AND the
 * catalog version key is still at `versionRevision` (0: never written), and the version
 * key is rewritten with it. Every change is thereby made against the latest catalog, so
 * watchers and concurrent writers (requests, the failover controller, the partition map)
 * see the changes in one order. A lost compare returns `committed: false`: re-read and
 * retry.
 */
export function commitCatalogChange(store: MetaStore, keys: CatalogKeys, versionRevision: number, change: TxnRequest, options: CallOptions): Promise<TxnResult> {
  return store.txn(
    {
      compares: [...(change.compares ?? []), { key: keys.version, modRevision: versionRevision }],
      puts: [...(change.puts ?? []), { key: keys.version, value: EMPTY }],
      ...(change.deletes !== undefined ? { deletes: change.deletes } : {}),
    },
    options,
  );
}

/** A collection record with the revisions its compare-and-swap needs. */
export interface StoredCollection {
  readonly rec: CollectionRecord;
  readonly createRevision: number;
  readonly modRevision: number;
}

/** The catalog's keys as read at one revision. */
export interface CatalogSnapshot {
  readonly revision: number;
  /** modRevision of the version key (0 before the first change). */
  readonly versionRevision: number;
  readonly collections: ReadonlyMap<string, StoredCollection>;
  readonly nodes: ReadonlyMap<string, NodeRecord>;
  /** Nodes whose lease is alive, with the modRevision of their alive key (a compare target). */
  readonly alive: ReadonlyMap<string, number>;
  /** Journal partition records by partition, with their modRevision (a compare target). */
  readonly journalPartitions: ReadonlyMap<number, StoredJournalPartition>;
}

export interface StoredJournalPartition {
  readonly rec: JournalPartitionRecord;
  readonly modRevision: number;
}

/** Reads every catalog key under `keys.root` in one range (one revision). */
export async function readCatalogSnapshot(store: MetaStore, keys: CatalogKeys, signal: AbortSignal): Promise<CatalogSnapshot> {
  const res = await store.range(keys.root, { signal });
  let versionRevision = 0;
  const collections = new Map<string, StoredCollection>();
  const nodes = new Map<string, NodeRecord>();
  const alive = new Map<string, number>();
  const journalPartitions = new Map<number, StoredJournalPartition>();
  for (const kv of res.kvs) {
    if (kv.key === keys.version) versionRevision = kv.modRevision;
    else if (kv.key.startsWith(keys.collections)) {
      collections.set(kv.key.slice(keys.collections.length), {
        rec: decodeCollection(kv.key, kv.value),
        createRevision: kv.createRevision,
        modRevision: kv.modRevision,
      });
    } else if (kv.key.startsWith(keys.nodes)) nodes.set(kv.key.slice(keys.nodes.length), decodeNode(kv.key, kv.value));
    else if (kv.key.startsWith(keys.alive)) alive.set(kv.key.slice(keys.alive.length), kv.modRevision);
    else if (kv.key.startsWith(keys.partitions)) {
      const rec = decodeJournalPartition(kv.key, kv.value);
      journalPartitions.set(rec.partition, { rec, modRevision: kv.modRevision });
    }
  }
  return { revision: res.revision, versionRevision, collections, nodes, alive, journalPartitions };
}

/**
 * Shard replicas each alive storage node hosts across the catalog (every collection, in
 * any state): the load placement and failover balance. Only alive storage nodes are keys.
 */
export function storageLoad(snap: CatalogSnapshot): Map<string, number> {
  const load = new Map<string, number>();
  for (const id of snap.alive.keys()) {
    if (snap.nodes.get(id)?.roles.includes(NodeRole.STORAGE) === true) load.set(id, 0);
  }
  for (const c of snap.collections.values()) {
    for (const s of c.rec.shards) for (const r of s.replicas) if (load.has(r)) load.set(r, (load.get(r) ?? 0) + 1);
  }
  return load;
}
