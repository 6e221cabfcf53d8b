// The SDK's own shapes: plain objects with string unions instead of protobuf messages and
// enum numbers. uint64 values (timestamps, offsets, counts) stay bigint, as in the
// generated code: a packed HLC timestamp exceeds 2^53 and must never become a Number.
import type { JsonObject } from "@bufbuild/protobuf";

export type { JsonObject, JsonValue } from "@bufbuild/protobuf";

/** How vectors of a collection are compared. */
export type Metric = "cosine" | "l2" | "ip";

/** The type of a metadata field in a collection's schema. */
export type FieldType = "string" | "int" | "float" | "bool" | "string_list";

/** A read's consistency level (see DESIGN §5). */
export type ConsistencyLevel = "eventual" | "bounded" | "session" | "strong";

/**
 * The consistency a read asks for: a level name, or a level with its parameters.
 * `sessionToken` on a session level overrides the token the client tracks.
 */
export type ConsistencyInput =
  ConsistencyLevel | { level: "eventual" } | { level: "strong" } | { level: "bounded"; stalenessMs?: number } | { level: "session"; sessionToken?: string };

/** A vector as callers hold it; converted to float32 values on the wire. */
export type VectorInput = readonly number[] | Float32Array | Float64Array;

export interface HnswParams {
  /** Graph connectivity; 0 or absent means the server default (16). */
  m: number;
  /** Candidate list size while building; server default 128. */
  efConstruction: number;
  /** Default candidate list size while searching; server default 64. */
  efSearch: number;
}

export interface MetadataFieldSpec {
  name: string;
  type: FieldType;
  /** Whether storage nodes index the field (fast filters). Default false. */
  indexed?: boolean;
}

export interface MetadataField {
  name: string;
  type: FieldType;
  indexed: boolean;
}

/** What `createCollection` takes. */
export interface CollectionSpec {
  name: string;
  dimension: number;
  metric: Metric;
  /** Fixed for the collection's life; default 1. */
  shards?: number;
  /** Storage replicas per shard; default 1. */
  replicationFactor?: number;
  hnsw?: Partial<HnswParams>;
  fields?: readonly MetadataFieldSpec[];
}

export interface ShardStats {
  shard: number;
  partition: number;
  records: bigint;
  appliedOffset: bigint;
  appliedTs: bigint;
  /** The node whose replica answered ("" when none did). */
  node: string;
  available: boolean;
}

export interface CollectionStats {
  records: bigint;
  shards: ShardStats[];
}

export interface CollectionInfo {
  name: string;
  dimension: number;
  metric: Metric | "unspecified";
  shards: number;
  replicationFactor: number;
  hnsw: HnswParams;
  fields: MetadataField[];
  createdTs: bigint;
  /** Set by `describeCollection` only. */
  stats?: CollectionStats;
}

/** A record to write. */
export interface RecordInput {
  id: string;
  vector: VectorInput;
  metadata?: JsonObject;
}

/** A record read back. */
export interface VectorRecord {
  id: string;
  vector: number[];
  /** `{}` when the record has none. */
  metadata: JsonObject;
}

/** Where a journal entry landed. */
export interface EntryPosition {
  partition: number;
  offset: bigint;
  ts: bigint;
}

export interface WriteResult {
  /** Records upserted or ids deleted. */
  count: number;
  /** The token to present to later SESSION reads (the client also keeps it). */
  sessionToken: string;
  /** The request id used; pass it to `getRequestLineage`. */
  requestId: string;
  /** One entry per shard touched, in global order. */
  entries: EntryPosition[];
}

export interface SearchHit {
  id: string;
  /** Distance under l2 (smaller is better), similarity under cosine and ip. */
  score: number;
  /** Present when `includeMetadata` was set. */
  metadata?: JsonObject;
  /** Present when `includeVectors` was set. */
  vector?: number[];
}

/** What every read returns besides its payload. */
export interface ReadInfo {
  /** The read timestamp used (0 for eventual reads). */
  readTs: bigint;
  sessionToken: string;
}

export interface SearchResult extends ReadInfo {
  hits: SearchHit[];
  /** Shards that did not answer (only with `allowPartialResults`). */
  missingShards: number[];
}

export interface GetResult extends ReadInfo {
  records: VectorRecord[];
  missingIds: string[];
}

export interface QueryPage extends ReadInfo {
  records: VectorRecord[];
  /** Empty after the last page. */
  nextPageToken: string;
}

export type Op = "upsert" | "delete" | "unspecified";

export type OperationType = "write" | "create_collection" | "drop_collection" | "unspecified";

export interface RecordVersion {
  ts: bigint;
  partition: number;
  offset: bigint;
  op: Op;
  requestId: string;
  principal: string;
  /** For upserts: the vector written. */
  vector: number[];
  /** For upserts: the metadata written. */
  metadata?: JsonObject;
}

export interface RecordHistoryPage extends ReadInfo {
  versions: RecordVersion[];
  nextPageToken: string;
}

export interface ReplicaApplyStatus {
  node: string;
  applied: boolean;
  appliedAt?: Date;
  appliedOffset: bigint;
  appliedTs: bigint;
  alive: boolean;
}

export interface LineageEntry {
  position?: EntryPosition;
  type: OperationType;
  collection: string;
  shard: number;
  upsertedIds: string[];
  deletedIds: string[];
  principal: string;
  replicas: ReplicaApplyStatus[];
}

export interface RequestLineage extends ReadInfo {
  requestId: string;
  entries: LineageEntry[];
}

export interface Operation {
  ts: bigint;
  partition: number;
  offset: bigint;
  type: OperationType;
  collection: string;
  shard: number;
  requestId: string;
  principal: string;
  upserts: number;
  deletes: number;
}

export interface OperationsPage extends ReadInfo {
  operations: Operation[];
  nextPageToken: string;
}

export interface RecordChange {
  ts: bigint;
  partition: number;
  offset: bigint;
  op: Op;
  id: string;
  vector: number[];
  metadata?: JsonObject;
  requestId: string;
  principal: string;
}

/** One message of a change stream; a heartbeat has no changes. */
export interface ChangeBatch {
  changes: RecordChange[];
  /** Every change with ts <= resolvedTs has been delivered. */
  resolvedTs: bigint;
}

export type NodeRole = "gateway" | "query_processor" | "storage" | "journal" | "meta" | "unspecified";

export interface NodeStatus {
  id: string;
  roles: NodeRole[];
  address: string;
  alive: boolean;
}

export interface PartitionStatus {
  partition: number;
  /** Empty during an election. */
  leader: string;
  epoch: number;
  commitOffset: bigint;
  closedTs: bigint;
  replicas: string[];
}

export interface ShardReplicaStatus {
  collection: string;
  shard: number;
  partition: number;
  node: string;
  appliedOffset: bigint;
  appliedTs: bigint;
  lag: bigint;
  lagMs: bigint;
  serving: boolean;
}

export interface ClusterStatus {
  nodes: NodeStatus[];
  partitions: PartitionStatus[];
  shardReplicas: ShardReplicaStatus[];
}
