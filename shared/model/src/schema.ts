// Collection schemas: validation with defaults, and conversion to and from the public
// `Collection` message.
import { create } from "@bufbuild/protobuf";
import { CollectionSchema, FieldType, HnswParamsSchema, MetadataFieldSchema, Metric } from "@vecraft/rpc";
import type { Collection } from "@vecraft/rpc";
import { MAX_SHARDS } from "./hash.js";
import { describeType, invalid } from "./util.js";

/** How vectors are compared (the `Metric` enum without its prefix). */
export type MetricName = "cosine" | "l2" | "ip";

/** The type of a metadata field (the `FieldType` enum without its prefix). */
export type FieldTypeName = "string" | "int" | "float" | "bool" | "string_list";

/** One field of a collection's metadata schema. */
export interface FieldSpec {
  readonly name: string;
  readonly type: FieldTypeName;
  readonly indexed: boolean;
}

/** HNSW parameters, defaults filled in. */
export interface HnswSpec {
  readonly m: number;
  readonly efConstruction: number;
  readonly efSearch: number;
}

/** A validated collection schema: a frozen plain object, defaults filled in. */
export interface CollectionSpec {
  readonly name: string;
  readonly dimension: number;
  readonly metric: MetricName;
  readonly shards: number;
  readonly replicationFactor: number;
  readonly hnsw: HnswSpec;
  /** In declaration order. */
  readonly fields: readonly FieldSpec[];
}

/**
 * What `CreateCollectionRequest` carries, in the shape of the generated message (so a
 * request passes straight in) but also accepting names for the enums. Absent and 0 mean
 * the default, as in the proto.
 */
export interface CollectionSpecInput {
  readonly name: string;
  readonly dimension: number;
  readonly metric: MetricName | Metric;
  readonly shards?: number | undefined;
  readonly replicationFactor?: number | undefined;
  readonly hnsw?:
    | {
        readonly m?: number | undefined;
        readonly efConstruction?: number | undefined;
        readonly efSearch?: number | undefined;
      }
    | undefined;
  readonly fields?:
    | readonly {
        readonly name: string;
        readonly type: FieldTypeName | FieldType;
        readonly indexed?: boolean | undefined;
      }[]
    | undefined;
}

/** Bounds and defaults of a collection schema (gateway.proto and DESIGN.md §2). */
export const COLLECTION_LIMITS = Object.freeze({
  maxNameLength: 64,
  minDimension: 1,
  maxDimension: 4096,
  minShards: 1,
  maxShards: MAX_SHARDS,
  defaultShards: 1,
  minReplicationFactor: 1,
  maxReplicationFactor: 5,
  defaultReplicationFactor: 1,
  minM: 2,
  maxM: 128,
  defaultM: 16,
  // gateway.proto documents ef_construction as 1..4096; the public contract wins.
  minEfConstruction: 1,
  maxEfConstruction: 4096,
  defaultEfConstruction: 128,
  minEfSearch: 1,
  maxEfSearch: 4096,
  defaultEfSearch: 64,
  maxFields: 64,
  maxFieldNameLength: 64,
});

const COLLECTION_NAME = /^[a-zA-Z][a-zA-Z0-9_-]{0,63}$/;
const FIELD_NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,63}$/;

const METRIC_BY_NAME: ReadonlyMap<unknown, MetricName> = new Map<unknown, MetricName>([
  ["cosine", "cosine"],
  ["l2", "l2"],
  ["ip", "ip"],
  [Metric.COSINE, "cosine"],
  [Metric.L2, "l2"],
  [Metric.IP, "ip"],
]);

const METRIC_TO_PROTO: Readonly<Record<MetricName, Metric>> = { cosine: Metric.COSINE, l2: Metric.L2, ip: Metric.IP };

const FIELD_TYPE_BY_NAME: ReadonlyMap<unknown, FieldTypeName> = new Map<unknown, FieldTypeName>([
  ["string", "string"],
  ["int", "int"],
  ["float", "float"],
  ["bool", "bool"],
  ["string_list", "string_list"],
  [FieldType.STRING, "string"],
  [FieldType.INT, "int"],
  [FieldType.FLOAT, "float"],
  [FieldType.BOOL, "bool"],
  [FieldType.STRING_LIST, "string_list"],
]);

const FIELD_TYPE_TO_PROTO: Readonly<Record<FieldTypeName, FieldType>> = {
  string: FieldType.STRING,
  int: FieldType.INT,
  float: FieldType.FLOAT,
  bool: FieldType.BOOL,
  string_list: FieldType.STRING_LIST,
};

function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  return describeType(v);
}

/** An integer in `min..max`; absent or 0 means `dflt` when one is given. */
function intInRange(path: string, v: unknown, min: number, max: number, dflt?: number): number {
  if (dflt !== undefined && (v === undefined || v === 0)) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v)) {
    throw invalid(path, `expected an integer, got ${show(v)}`);
  }
  if (v < min || v > max) {
    throw invalid(path, `${v} is out of range ${min}..${max}`);
  }
  return v;
}

/**
 * Validates a collection schema (a `CreateCollectionRequest` or the equivalent object)
 * and fills in the defaults. Throws `InvalidArgumentError` naming the first bad field with
 * its proto name (`replication_factor`, `hnsw.ef_construction`, `fields[2].name`).
 */
export function validateCollectionSpec(spec: CollectionSpecInput): CollectionSpec {
  if (typeof spec !== "object" || spec === null) {
    throw invalid("collection", `expected an object, got ${describeType(spec)}`);
  }
  const L = COLLECTION_LIMITS;
  const name: unknown = spec.name;
  if (name === undefined || name === "") {
    throw invalid("name", "required");
  }
  if (typeof name !== "string") {
    throw invalid("name", `expected a string, got ${describeType(name)}`);
  }
  if (!COLLECTION_NAME.test(name)) {
    throw invalid("name", `${JSON.stringify(name)} does not match [a-zA-Z][a-zA-Z0-9_-]{0,63} (a letter, then up to 63 letters, digits, _ or -)`);
  }
  const dimension = intInRange("dimension", spec.dimension, L.minDimension, L.maxDimension);

  const metricIn: unknown = spec.metric;
  if (metricIn === undefined || metricIn === Metric.UNSPECIFIED || metricIn === "") {
    throw invalid("metric", "required (cosine, l2 or ip)");
  }
  const metric = METRIC_BY_NAME.get(metricIn);
  if (metric === undefined) {
    throw invalid("metric", `unknown metric ${show(metricIn)} (expected cosine, l2 or ip)`);
  }

  const shards = intInRange("shards", spec.shards, L.minShards, L.maxShards, L.defaultShards);
  const replicationFactor = intInRange(
    "replication_factor",
    spec.replicationFactor,
    L.minReplicationFactor,
    L.maxReplicationFactor,
    L.defaultReplicationFactor,
  );

  const hnswIn: unknown = spec.hnsw;
  if (hnswIn !== undefined && (typeof hnswIn !== "object" || hnswIn === null)) {
    throw invalid("hnsw", `expected an object, got ${describeType(hnswIn)}`);
  }
  const h = (hnswIn ?? {}) as NonNullable<CollectionSpecInput["hnsw"]>;
  const hnsw: HnswSpec = Object.freeze({
    m: intInRange("hnsw.m", h.m, L.minM, L.maxM, L.defaultM),
    efConstruction: intInRange("hnsw.ef_construction", h.efConstruction, L.minEfConstruction, L.maxEfConstruction, L.defaultEfConstruction),
    efSearch: intInRange("hnsw.ef_search", h.efSearch, L.minEfSearch, L.maxEfSearch, L.defaultEfSearch),
  });

  const fieldsIn: unknown = spec.fields ?? [];
  if (!Array.isArray(fieldsIn)) {
    throw invalid("fields", `expected a list, got ${describeType(fieldsIn)}`);
  }
  if (fieldsIn.length > L.maxFields) {
    throw invalid("fields", `at most ${L.maxFields} fields, got ${fieldsIn.length}`);
  }
  const seen = new Map<string, number>();
  const fields: FieldSpec[] = [];
  (fieldsIn as unknown[]).forEach((f, i) => {
    const path = `fields[${i}]`;
    if (typeof f !== "object" || f === null || Array.isArray(f)) {
      throw invalid(path, `expected an object, got ${describeType(f)}`);
    }
    const fo = f as Record<string, unknown>;
    const fname = fo["name"];
    if (fname === undefined || fname === "") {
      throw invalid(`${path}.name`, "required");
    }
    if (typeof fname !== "string") {
      throw invalid(`${path}.name`, `expected a string, got ${describeType(fname)}`);
    }
    if (!FIELD_NAME.test(fname)) {
      throw invalid(`${path}.name`, `${JSON.stringify(fname)} does not match [a-zA-Z_][a-zA-Z0-9_]{0,63} (a letter or _, then up to 63 letters, digits or _)`);
    }
    const first = seen.get(fname);
    if (first !== undefined) {
      throw invalid(`${path}.name`, `duplicate of fields[${first}].name ${JSON.stringify(fname)}`);
    }
    seen.set(fname, i);
    const typeIn = fo["type"];
    if (typeIn === undefined || typeIn === FieldType.UNSPECIFIED || typeIn === "") {
      throw invalid(`${path}.type`, "required (string, int, float, bool or string_list)");
    }
    const type = FIELD_TYPE_BY_NAME.get(typeIn);
    if (type === undefined) {
      throw invalid(`${path}.type`, `unknown type ${show(typeIn)} (expected string, int, float, bool or string_list)`);
    }
    const indexedIn = fo["indexed"];
    if (indexedIn !== undefined && typeof indexedIn !== "boolean") {
      throw invalid(`${path}.indexed`, `expected true or false, got ${describeType(indexedIn)}`);
    }
    fields.push(Object.freeze({ name: fname, type, indexed: indexedIn ?? false }));
  });

  return Object.freeze({
    name,
    dimension,
    metric,
    shards,
    replicationFactor,
    hnsw,
    fields: Object.freeze(fields),
  });
}

/**
 * The public `Collection` message for a spec, defaults filled in (what CreateCollection
 * and DescribeCollection return). `createdTs` is the ts of the DDL entry, when known.
 */
export function specToProto(spec: CollectionSpec, createdTs = 0n): Collection {
  return create(CollectionSchema, {
    name: spec.name,
    dimension: spec.dimension,
    metric: METRIC_TO_PROTO[spec.metric],
    shards: spec.shards,
    replicationFactor: spec.replicationFactor,
    hnsw: create(HnswParamsSchema, {
      m: spec.hnsw.m,
      efConstruction: spec.hnsw.efConstruction,
      efSearch: spec.hnsw.efSearch,
    }),
    fields: spec.fields.map((f) => create(MetadataFieldSchema, { name: f.name, type: FIELD_TYPE_TO_PROTO[f.type], indexed: f.indexed })),
    createdTs,
  });
}

/**
 * The spec of a `Collection` message (from the catalog or a peer), validated like a new
 * one: a catalog entry that would not pass CreateCollection is rejected, not trusted.
 * `createdTs` and `stats` are not part of the spec and are ignored.
 */
export function specFromProto(collection: Collection): CollectionSpec {
  return validateCollectionSpec(collection);
}

/** The proto enum value of a metric name. */
export function metricToProto(metric: MetricName): Metric {
  return METRIC_TO_PROTO[metric];
}

/** The proto enum value of a field type name. */
export function fieldTypeToProto(type: FieldTypeName): FieldType {
  return FIELD_TYPE_TO_PROTO[type];
}
