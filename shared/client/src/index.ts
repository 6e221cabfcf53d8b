// @vecraft/client: the TypeScript SDK for Vecraft's public API (VecraftService). Import
// from the package, never from its files.

export { VecraftClient, createVecraftClient, DEFAULT_TIMEOUT_MS } from "./client.js";
export type {
  VecraftClientOptions,
  CallOptions,
  WriteOptions,
  ReadOptions,
  SearchOptions,
  PageOptions,
  QueryOptions,
  ListOperationsOptions,
  WatchOptions,
} from "./client.js";

export { SessionTokenTracker, laterSessionToken } from "./session.js";

export { isConnectionError, isRetryableRead, isRetryableWrite, resolveRetryPolicy } from "./retry-policy.js";
export type { RetryPolicy, ResolvedRetryPolicy, ClientRetryInfo } from "./retry-policy.js";

export type { Protocol } from "./transport.js";

export { parseConsistencyLevel } from "./convert.js";

export type {
  JsonObject,
  JsonValue,
  Metric,
  FieldType,
  ConsistencyLevel,
  ConsistencyInput,
  VectorInput,
  HnswParams,
  MetadataFieldSpec,
  MetadataField,
  CollectionSpec,
  ShardStats,
  CollectionStats,
  CollectionInfo,
  RecordInput,
  VectorRecord,
  EntryPosition,
  WriteResult,
  SearchHit,
  ReadInfo,
  SearchResult,
  GetResult,
  QueryPage,
  Op,
  OperationType,
  RecordVersion,
  RecordHistoryPage,
  ReplicaApplyStatus,
  LineageEntry,
  RequestLineage,
  Operation,
  OperationsPage,
  RecordChange,
  ChangeBatch,
  NodeRole,
  NodeStatus,
  PartitionStatus,
  ShardReplicaStatus,
  ClusterStatus,
} from "./types.js";
