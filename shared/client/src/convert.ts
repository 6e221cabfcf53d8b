// Conversions between the SDK's plain shapes and the generated protobuf messages.
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Consistency, FieldType as PbFieldType, Metric as PbMetric, NodeRole as PbNodeRole, Op as PbOp, OperationType as PbOperationType } from "@vecraft/rpc";
import type * as pb from "@vecraft/rpc";
import type {
  ChangeBatch,
  ClusterStatus,
  CollectionInfo,
  CollectionSpec,
  ConsistencyInput,
  ConsistencyLevel,
  EntryPosition,
  FieldType,
  LineageEntry,
  Metric,
  NodeRole,
  Op,
  Operation,
  OperationType,
  RecordInput,
  RecordVersion,
  SearchHit,
  VectorInput,
  VectorRecord,
} from "./types.js";

/**
 * Bad input caught before a call is sent: the same error a server would return, so
 * callers handle one error type.
 */
export function invalidArgument(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

const METRICS: Readonly<Record<Metric, PbMetric>> = { cosine: PbMetric.COSINE, l2: PbMetric.L2, ip: PbMetric.IP };
const FIELD_TYPES: Readonly<Record<FieldType, PbFieldType>> = {
  string: PbFieldType.STRING,
  int: PbFieldType.INT,
  float: PbFieldType.FLOAT,
  bool: PbFieldType.BOOL,
  string_list: PbFieldType.STRING_LIST,
};
const LEVELS: Readonly<Record<ConsistencyLevel, Consistency>> = {
  eventual: Consistency.EVENTUAL,
  bounded: Consistency.BOUNDED,
  session: Consistency.SESSION,
  strong: Consistency.STRONG,
};

function lookup<K extends string, V>(table: Readonly<Record<K, V>>, key: string, what: string): V {
  if (!Object.prototype.hasOwnProperty.call(table, key)) {
    throw invalidArgument(`unknown ${what} ${JSON.stringify(key)}; expected one of ${Object.keys(table).join(", ")}`);
  }
  return table[key as K];
}

function reverse<K extends string, V>(table: Readonly<Record<K, V>>, value: V): K | "unspecified" {
  for (const [k, v] of Object.entries(table) as [K, V][]) {
    if (v === value) return k;
  }
  return "unspecified";
}

export const metricToProto = (m: Metric): PbMetric => lookup(METRICS, m, "metric");
export const metricFromProto = (m: PbMetric): Metric | "unspecified" => reverse(METRICS, m);
export const fieldTypeToProto = (t: FieldType): PbFieldType => lookup(FIELD_TYPES, t, "field type");
export const fieldTypeFromProto = (t: PbFieldType): FieldType => {
  const r = reverse(FIELD_TYPES, t);
  // The server never returns an unspecified field type; "string" is the harmless reading.
  return r === "unspecified" ? "string" : r;
};

/** Protobuf `repeated float` takes numbers; a typed array is copied once. */
export function vectorToProto(v: VectorInput): number[] {
  return Array.isArray(v) ? (v as number[]) : Array.from(v);
}

export function recordToProto(r: RecordInput): MessageInitShape<typeof pb.VectorRecordSchema> {
  return { id: r.id, vector: vectorToProto(r.vector), ...(r.metadata !== undefined ? { metadata: r.metadata } : {}) };
}

export function recordFromProto(r: pb.VectorRecord): VectorRecord {
  return { id: r.id, vector: r.vector, metadata: r.metadata ?? {} };
}

export function collectionSpecToProto(spec: CollectionSpec): MessageInitShape<typeof pb.CreateCollectionRequestSchema> {
  return {
    name: spec.name,
    dimension: spec.dimension,
    metric: metricToProto(spec.metric),
    shards: spec.shards ?? 0,
    replicationFactor: spec.replicationFactor ?? 0,
    ...(spec.hnsw !== undefined ? { hnsw: { m: spec.hnsw.m ?? 0, efConstruction: spec.hnsw.efConstruction ?? 0, efSearch: spec.hnsw.efSearch ?? 0 } } : {}),
    fields: (spec.fields ?? []).map((f) => ({ name: f.name, type: fieldTypeToProto(f.type), indexed: f.indexed ?? false })),
  };
}

export function collectionFromProto(c: pb.Collection | undefined): CollectionInfo {
  if (c === undefined) {
    // A response without its collection is a server bug; say so rather than invent one.
    throw new ConnectError("the server's response has no collection", Code.Internal);
  }
  const info: CollectionInfo = {
    name: c.name,
    dimension: c.dimension,
    metric: metricFromProto(c.metric),
    shards: c.shards,
    replicationFactor: c.replicationFactor,
    hnsw: { m: c.hnsw?.m ?? 0, efConstruction: c.hnsw?.efConstruction ?? 0, efSearch: c.hnsw?.efSearch ?? 0 },
    fields: c.fields.map((f) => ({ name: f.name, type: fieldTypeFromProto(f.type), indexed: f.indexed })),
    createdTs: c.createdTs,
  };
  if (c.stats !== undefined) {
    info.stats = {
      records: c.stats.records,
      shards: c.stats.shards.map((s) => ({
        shard: s.shard,
        partition: s.partition,
        records: s.records,
        appliedOffset: s.appliedOffset,
        appliedTs: s.appliedTs,
        node: s.node,
        available: s.available,
      })),
    };
  }
  return info;
}

export function positionFromProto(p: pb.EntryPosition): EntryPosition {
  return { partition: p.partition, offset: p.offset, ts: p.ts };
}

/** A level name in any case, with or without the `CONSISTENCY_` prefix. */
export function parseConsistencyLevel(text: string): ConsistencyLevel | undefined {
  const t = text
    .trim()
    .toLowerCase()
    .replace(/^consistency_/, "");
  return Object.prototype.hasOwnProperty.call(LEVELS, t) ? (t as ConsistencyLevel) : undefined;
}

/**
 * The ReadConsistency message for a read. A session read carries the caller's token if
 * given, else the one the client tracks; other levels carry no token.
 */
export function consistencyToProto(
  input: ConsistencyInput,
  trackedToken: string | undefined,
  stalenessMs?: number,
): MessageInitShape<typeof pb.ReadConsistencySchema> {
  const c = typeof input === "string" ? { level: input } : input;
  const level = lookup(LEVELS, c.level, "consistency level");
  const out: MessageInitShape<typeof pb.ReadConsistencySchema> = { level };
  if (c.level === "bounded") {
    const ms = ("stalenessMs" in c ? c.stalenessMs : undefined) ?? stalenessMs;
    if (ms !== undefined) {
      if (!Number.isInteger(ms) || ms < 0 || ms > 0xffffffff) {
        throw invalidArgument(`stalenessMs must be a non-negative integer, got ${ms}`);
      }
      out.stalenessMs = ms;
    }
  }
  if (c.level === "session") {
    const token = ("sessionToken" in c ? c.sessionToken : undefined) ?? trackedToken;
    if (token !== undefined) out.sessionToken = token;
  }
  return out;
}

export function hitFromProto(h: pb.SearchHit, includeVectors: boolean): SearchHit {
  const hit: SearchHit = { id: h.id, score: h.score };
  if (h.metadata !== undefined) hit.metadata = h.metadata;
  if (includeVectors) hit.vector = h.vector;
  return hit;
}

const OPS: Readonly<Record<Exclude<Op, "unspecified">, PbOp>> = { upsert: PbOp.UPSERT, delete: PbOp.DELETE };
const OPERATION_TYPES: Readonly<Record<Exclude<OperationType, "unspecified">, PbOperationType>> = {
  write: PbOperationType.WRITE,
  create_collection: PbOperationType.CREATE_COLLECTION,
  drop_collection: PbOperationType.DROP_COLLECTION,
};
const NODE_ROLES: Readonly<Record<Exclude<NodeRole, "unspecified">, PbNodeRole>> = {
  gateway: PbNodeRole.GATEWAY,
  query_processor: PbNodeRole.QUERY_PROCESSOR,
  storage: PbNodeRole.STORAGE,
  journal: PbNodeRole.JOURNAL,
  meta: PbNodeRole.META,
};

export const opFromProto = (op: PbOp): Op => reverse(OPS, op);
export const operationTypeFromProto = (t: PbOperationType): OperationType => reverse(OPERATION_TYPES, t);
export const nodeRoleFromProto = (r: PbNodeRole): NodeRole => reverse(NODE_ROLES, r);

function withMetadata<T extends object>(out: T, metadata: JsonObject | undefined): T & { metadata?: JsonObject } {
  return metadata === undefined ? out : { ...out, metadata };
}

export function versionFromProto(v: pb.RecordVersion): RecordVersion {
  return withMetadata(
    {
      ts: v.ts,
      partition: v.partition,
      offset: v.offset,
      op: opFromProto(v.op),
      requestId: v.requestId,
      principal: v.principal,
      vector: v.vector,
    },
    v.metadata,
  );
}

export function lineageEntryFromProto(e: pb.LineageEntry): LineageEntry {
  const out: LineageEntry = {
    type: operationTypeFromProto(e.type),
    collection: e.collection,
    shard: e.shard,
    upsertedIds: e.upsertedIds,
    deletedIds: e.deletedIds,
    principal: e.principal,
    replicas: e.replicas.map((r) => ({
      node: r.node,
      applied: r.applied,
      ...(r.appliedAt !== undefined ? { appliedAt: timestampDate(r.appliedAt) } : {}),
      appliedOffset: r.appliedOffset,
      appliedTs: r.appliedTs,
      alive: r.alive,
    })),
  };
  if (e.position !== undefined) out.position = positionFromProto(e.position);
  return out;
}

export function operationFromProto(o: pb.Operation): Operation {
  return {
    ts: o.ts,
    partition: o.partition,
    offset: o.offset,
    type: operationTypeFromProto(o.type),
    collection: o.collection,
    shard: o.shard,
    requestId: o.requestId,
    principal: o.principal,
    upserts: o.upserts,
    deletes: o.deletes,
  };
}

export function changesFromProto(m: pb.WatchChangesResponse): ChangeBatch {
  return {
    resolvedTs: m.resolvedTs,
    changes: m.changes.map((c) =>
      withMetadata(
        {
          ts: c.ts,
          partition: c.partition,
          offset: c.offset,
          op: opFromProto(c.op),
          id: c.id,
          vector: c.vector,
          requestId: c.requestId,
          principal: c.principal,
        },
        c.metadata,
      ),
    ),
  };
}

export function clusterStatusFromProto(s: pb.GetClusterStatusResponse): ClusterStatus {
  return {
    nodes: s.nodes.map((n) => ({ id: n.id, roles: n.roles.map(nodeRoleFromProto), address: n.address, alive: n.alive })),
    partitions: s.partitions.map((p) => ({
      partition: p.partition,
      leader: p.leader,
      epoch: p.epoch,
      commitOffset: p.commitOffset,
      closedTs: p.closedTs,
      replicas: p.replicas,
    })),
    shardReplicas: s.shardReplicas.map((r) => ({
      collection: r.collection,
      shard: r.shard,
      partition: r.partition,
      node: r.node,
      appliedOffset: r.appliedOffset,
      appliedTs: r.appliedTs,
      lag: r.lag,
      lagMs: r.lagMs,
      serving: r.serving,
    })),
  };
}
