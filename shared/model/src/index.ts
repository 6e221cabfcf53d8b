// Public API of @vecraft/model: import from the package root, never from a module path.
// Pure logic (no I/O): collection schemas, record validation, shard hashing, and the
// metadata filter language compiled to parameterised SQL.
export { COLLECTION_LIMITS, validateCollectionSpec, specToProto, specFromProto, metricToProto, fieldTypeToProto } from "./schema.js";
export type { CollectionSpec, CollectionSpecInput, FieldSpec, FieldTypeName, HnswSpec, MetricName } from "./schema.js";

export {
  DEFAULT_BATCH_LIMITS,
  MAX_ID_BYTES,
  MAX_METADATA_DEPTH,
  validateUpsertBatch,
  validateDeleteBatch,
  validateRecordId,
  validateQueryVector,
} from "./records.js";
export type { BatchLimits, UpsertRecordInput, ValidatedDelete, ValidatedRecord } from "./records.js";

export { MAX_SHARDS, shardOf, xxhash64 } from "./hash.js";

export { FILTER_LIMITS, compileFilter, metadataFieldExpression } from "./filter.js";
export type { CompiledFilter, CompileFilterOptions } from "./filter.js";
