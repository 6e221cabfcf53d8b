// Validation of write batches (Upsert, Delete) and of query vectors. A batch is checked
// whole before anything is journaled: the first problem rejects it, naming the item index
// and the field (DESIGN.md §2).
import { shardOfBytes } from "./hash.js";
import type { CollectionSpec, FieldSpec } from "./schema.js";
import { describeType, invalid, isPlainObject, isWellFormed, pathKey, utf8ByteLength } from "./util.js";

/** The longest record id, in UTF-8 bytes (DESIGN.md §2). */
export const MAX_ID_BYTES = 256;

/** How deeply metadata values may nest (the top-level object is level 1). */
export const MAX_METADATA_DEPTH = 32;

/** Per-request bounds, set by the gateway's configuration. */
export interface BatchLimits {
  /** The most records (or ids) in one batch. */
  readonly maxBatch: number;
  /** The longest id in UTF-8 bytes: at most `MAX_ID_BYTES`. */
  readonly maxIdBytes: number;
  /** The largest metadata of one record, as UTF-8 JSON text. */
  readonly maxMetadataBytes: number;
}

/** Defaults for `BatchLimits`. */
export const DEFAULT_BATCH_LIMITS: BatchLimits = Object.freeze({ maxBatch: 1000, maxIdBytes: MAX_ID_BYTES, maxMetadataBytes: 64 * 1024 });

/** One record of an Upsert, as the gateway has it after decoding the request. */
export interface UpsertRecordInput {
  readonly id: string;
  readonly vector: readonly number[] | Float32Array;
  readonly metadata?: Readonly<Record<string, unknown>> | undefined;
}

/** A record that passed validation, ready to be journaled. */
export interface ValidatedRecord {
  readonly id: string;
  /** A copy, rounded to float32; never the caller's array. */
  readonly vector: Float32Array;
  /** The metadata as JSON text (`{}` for none): what storage keeps and filters run on. */
  readonly metadataJson: string;
  /** `shardOf(id, spec.shards)`. */
  readonly shard: number;
}

/** An id of a Delete that passed validation. */
export interface ValidatedDelete {
  readonly id: string;
  readonly shard: number;
}

const encoder = new TextEncoder();

function checkLimits(limits: Partial<BatchLimits>, needMetadata: boolean): void {
  const positive = (name: string, v: unknown, max = Number.MAX_SAFE_INTEGER): void => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > max) {
      throw new RangeError(`limits.${name} must be an integer in 1..${max}, got ${String(v)}`);
    }
  };
  positive("maxBatch", limits.maxBatch);
  positive("maxIdBytes", limits.maxIdBytes, MAX_ID_BYTES);
  if (needMetadata) positive("maxMetadataBytes", limits.maxMetadataBytes);
}

/** Checks one id; returns its UTF-8 bytes (for the shard hash). */
function checkId(id: unknown, path: string, maxBytes: number, index?: number): Uint8Array {
  if (typeof id !== "string") {
    throw invalid(path, `expected a string, got ${describeType(id)}`, index);
  }
  if (id.length === 0) {
    throw invalid(path, "empty", index);
  }
  if (!isWellFormed(id)) {
    throw invalid(path, "not well-formed Unicode (a lone surrogate has no UTF-8 encoding)", index);
  }
  const bytes = utf8ByteLength(id);
  if (bytes > maxBytes) {
    throw invalid(path, `${bytes} bytes, at most ${maxBytes}`, index);
  }
  return encoder.encode(id);
}

/**
 * Checks a record id (1..`maxBytes` bytes of well-formed UTF-8) and returns it. For the
 * single ids of Get and GetRecordHistory; the batch validators check theirs themselves.
 */
export function validateRecordId(id: unknown, path = "id", maxBytes = MAX_ID_BYTES): string {
  checkId(id, path, maxBytes);
  return id as string;
}

function quoteId(id: string): string {
  return JSON.stringify(id);
}

/**
 * Checks a vector against the collection (dimension, finite float32 values, not zero
 * under cosine) and returns it as a new Float32Array.
 */
function checkVector(spec: CollectionSpec, v: unknown, path: string, index?: number): Float32Array {
  let out: Float32Array;
  if (v instanceof Float32Array) {
    if (v.length !== spec.dimension) {
      throw invalid(path, `expected ${spec.dimension} dimensions, got ${v.length}`, index);
    }
    out = v.slice();
    for (let i = 0; i < out.length; i++) {
      const x = out[i]!;
      if (!Number.isFinite(x)) {
        throw invalid(`${path}[${i}]`, `${String(x)} is not allowed`, index);
      }
    }
  } else if (Array.isArray(v)) {
    if (v.length !== spec.dimension) {
      throw invalid(path, `expected ${spec.dimension} dimensions, got ${v.length}`, index);
    }
    out = new Float32Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      if (typeof x !== "number") {
        throw invalid(`${path}[${i}]`, `expected a number, got ${describeType(x)}`, index);
      }
      if (!Number.isFinite(x)) {
        throw invalid(`${path}[${i}]`, `${String(x)} is not allowed`, index);
      }
      const f = Math.fround(x);
      if (!Number.isFinite(f)) {
        throw invalid(`${path}[${i}]`, `${x} is outside the float32 range (±3.4028234663852886e38)`, index);
      }
      out[i] = f;
    }
  } else {
    throw invalid(path, `expected a list of numbers, got ${describeType(v)}`, index);
  }
  if (spec.metric === "cosine" && out.every((x) => x === 0)) {
    throw invalid(path, "a zero vector has no direction under the cosine metric", index);
  }
  return out;
}

/**
 * Checks a query vector (Search) like a record's: `dimension` finite float32 values, not
 * all zero under cosine. Returns a new Float32Array.
 */
export function validateQueryVector(spec: CollectionSpec, vector: readonly number[] | Float32Array, path = "vector"): Float32Array {
  return checkVector(spec, vector, path);
}

function renderPath(base: string, keys: readonly (string | number)[]): string {
  let p = base;
  for (const k of keys) p += typeof k === "number" ? `[${k}]` : pathKey(k);
  return p;
}

/** Checks a schema field's value; `undefined` (absent) was handled by the caller. */
function checkFieldValue(field: FieldSpec, v: unknown, path: string, index: number): void {
  const bad = (): never => {
    const hint = v === null ? " (omit the field instead)" : "";
    throw invalid(path, `expected ${field.type}, got ${describeType(v)}${hint}`, index);
  };
  switch (field.type) {
    case "string":
      if (typeof v !== "string") bad();
      return;
    case "int":
      if (typeof v !== "number" || !Number.isInteger(v)) bad();
      if (!Number.isSafeInteger(v)) {
        throw invalid(path, `expected int, got ${String(v)}, outside the safe integer range ±(2^53-1)`, index);
      }
      return;
    case "float":
      if (typeof v !== "number" || !Number.isFinite(v)) bad();
      return;
    case "bool":
      if (typeof v !== "boolean") bad();
      return;
    case "string_list": {
      if (!Array.isArray(v)) {
        throw invalid(path, `expected a list of strings, got ${describeType(v)}`, index);
      }
      const items = v as unknown[];
      for (let i = 0; i < items.length; i++) {
        if (typeof items[i] !== "string") {
          throw invalid(path, `expected a list of strings, but item ${i} is ${describeType(items[i])}`, index);
        }
      }
      return;
    }
  }
}

/**
 * Checks that a value survives JSON (and protobuf's Struct) unchanged: plain objects,
 * arrays, finite numbers, well-formed strings, booleans and null, nested at most
 * `MAX_METADATA_DEPTH` deep. `undefined` object members are allowed and dropped, as
 * JSON.stringify drops them.
 */
function checkJsonValue(v: unknown, base: string, keys: (string | number)[], depth: number, index: number): void {
  const fail = (problem: string): never => {
    throw invalid(renderPath(base, keys), problem, index);
  };
  switch (typeof v) {
    case "string":
      if (!isWellFormed(v)) fail("not well-formed Unicode (a lone surrogate has no UTF-8 encoding)");
      return;
    case "number":
      if (!Number.isFinite(v)) fail(`${String(v)} is not valid JSON`);
      return;
    case "boolean":
      return;
    case "object":
      break;
    default:
      fail(`expected a JSON value, got ${typeof v}`);
  }
  if (v === null) return;
  if (depth >= MAX_METADATA_DEPTH) fail(`nested deeper than ${MAX_METADATA_DEPTH} levels`);
  if (Array.isArray(v)) {
    const items = v as unknown[];
    for (let i = 0; i < items.length; i++) {
      keys.push(i);
      if (items[i] === undefined) fail("undefined is not valid JSON");
      checkJsonValue(items[i], base, keys, depth + 1, index);
      keys.pop();
    }
    return;
  }
  if (!isPlainObject(v)) fail("expected a plain JSON object");
  for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
    keys.push(k);
    if (!isWellFormed(k)) fail("key is not well-formed Unicode (a lone surrogate has no UTF-8 encoding)");
    if (item !== undefined) checkJsonValue(item, base, keys, depth + 1, index);
    keys.pop();
  }
}

function checkMetadata(spec: CollectionSpec, md: unknown, path: string, index: number, maxBytes: number): string {
  if (md === undefined) return "{}";
  if (!isPlainObject(md)) {
    throw invalid(path, `expected a JSON object, got ${describeType(md)}`, index);
  }
  for (const field of spec.fields) {
    if (!Object.prototype.hasOwnProperty.call(md, field.name)) continue;
    const v = md[field.name];
    if (v !== undefined) checkFieldValue(field, v, `${path}.${field.name}`, index);
  }
  checkJsonValue(md, path, [], 1, index);
  const json = JSON.stringify(md);
  const bytes = utf8ByteLength(json);
  if (bytes > maxBytes) {
    throw invalid(path, `${bytes} bytes of JSON, at most ${maxBytes}`, index);
  }
  return json;
}

/**
 * Validates a whole Upsert batch against its collection: 1..`maxBatch` records, each with
 * a valid id unique in the batch, a vector of `dimension` finite float32 values (not zero
 * under cosine), and metadata that is a JSON object whose schema fields have their
 * declared types (other keys are kept as they are). Returns the records ready to journal,
 * or throws `InvalidArgumentError` for the first problem, e.g.
 * `records[3].vector: expected 128 dimensions, got 127`.
 */
export function validateUpsertBatch(
  spec: CollectionSpec,
  records: readonly UpsertRecordInput[],
  limits: BatchLimits = DEFAULT_BATCH_LIMITS,
): ValidatedRecord[] {
  checkLimits(limits, true);
  if (!Array.isArray(records)) {
    throw invalid("records", `expected a list, got ${describeType(records)}`);
  }
  const list = records as readonly unknown[];
  if (list.length === 0) {
    throw invalid("records", "the batch is empty (at least 1 record)");
  }
  if (list.length > limits.maxBatch) {
    throw invalid("records", `${list.length} records, at most ${limits.maxBatch}`);
  }
  const firstIndex = new Map<string, number>();
  const out: ValidatedRecord[] = [];
  for (let i = 0; i < list.length; i++) {
    const path = `records[${i}]`;
    const r = list[i];
    if (typeof r !== "object" || r === null || Array.isArray(r)) {
      throw invalid(path, `expected a record, got ${describeType(r)}`, i);
    }
    const rec = r as Record<string, unknown>;
    const idBytes = checkId(rec["id"], `${path}.id`, limits.maxIdBytes, i);
    const id = rec["id"] as string;
    const first = firstIndex.get(id);
    if (first !== undefined) {
      throw invalid(`${path}.id`, `duplicate of records[${first}].id ${quoteId(id)}`, i);
    }
    firstIndex.set(id, i);
    const vector = checkVector(spec, rec["vector"], `${path}.vector`, i);
    const metadataJson = checkMetadata(spec, rec["metadata"], `${path}.metadata`, i, limits.maxMetadataBytes);
    out.push(Object.freeze({ id, vector, metadataJson, shard: shardOfBytes(idBytes, spec.shards) }));
  }
  return out;
}

/**
 * Validates a whole Delete batch: 1..`maxBatch` ids, each valid and unique in the batch.
 * Returns each id with its shard, or throws `InvalidArgumentError` naming the first bad
 * one, e.g. `ids[4]: duplicate of ids[1] "abc"`.
 */
export function validateDeleteBatch(
  spec: CollectionSpec,
  ids: readonly string[],
  limits: Pick<BatchLimits, "maxBatch" | "maxIdBytes"> = DEFAULT_BATCH_LIMITS,
): ValidatedDelete[] {
  checkLimits(limits, false);
  if (!Array.isArray(ids)) {
    throw invalid("ids", `expected a list, got ${describeType(ids)}`);
  }
  const list = ids as readonly unknown[];
  if (list.length === 0) {
    throw invalid("ids", "the batch is empty (at least 1 id)");
  }
  if (list.length > limits.maxBatch) {
    throw invalid("ids", `${list.length} ids, at most ${limits.maxBatch}`);
  }
  const firstIndex = new Map<string, number>();
  const out: ValidatedDelete[] = [];
  for (let i = 0; i < list.length; i++) {
    const path = `ids[${i}]`;
    const idBytes = checkId(list[i], path, limits.maxIdBytes, i);
    const id = list[i] as string;
    const first = firstIndex.get(id);
    if (first !== undefined) {
      throw invalid(path, `duplicate of ids[${first}] ${quoteId(id)}`, i);
    }
    firstIndex.set(id, i);
    out.push(Object.freeze({ id, shard: shardOfBytes(idBytes, spec.shards) }));
  }
  return out;
}
