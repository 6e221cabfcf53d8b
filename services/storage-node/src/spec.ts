// What a shard needs to know about its collection, decoded from the DDL entry's
// serialized vecraft.v1.Collection.
import { metadataFieldExpression, specFromProto } from "@vecraft/model";
import { Metric as ProtoMetric, type Collection } from "@vecraft/rpc";
import type { IndexParams, Metric } from "./vector-index.js";

/** The spec fields a shard needs, decoded from the DDL entry's serialized Collection. */
export interface ShardSpec {
  readonly collection: Collection;
  readonly params: IndexParams;
}

const METRICS: Partial<Record<ProtoMetric, Metric>> = { [ProtoMetric.COSINE]: "cosine", [ProtoMetric.L2]: "l2", [ProtoMetric.IP]: "ip" };

export function shardSpecFrom(collection: Collection): ShardSpec {
  const metric = METRICS[collection.metric];
  if (!metric) throw new Error(`collection ${collection.name} has no metric`);
  return {
    collection,
    params: {
      dimension: collection.dimension,
      metric,
      m: collection.hnsw?.m || 16,
      efConstruction: collection.hnsw?.efConstruction || 128,
      efSearch: collection.hnsw?.efSearch || 64,
    },
  };
}


/** SQL expressions to index, one per indexed schema field, as the filter compiler writes them. */
export function indexedFieldExpressions(collection: Collection): { name: string; expression: string }[] {
  return specFromProto(collection)
    .fields.filter((f) => f.indexed)
    .map((f) => ({ name: f.name, expression: metadataFieldExpression(f) }));
}
