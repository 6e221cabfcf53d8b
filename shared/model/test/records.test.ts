import { InvalidArgumentError } from "@vecraft/common";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_BATCH_LIMITS,
  shardOf,
  validateCollectionSpec,
  validateDeleteBatch,
  validateQueryVector,
  validateRecordId,
  validateUpsertBatch,
} from "../src/index.js";
import type { BatchLimits, CollectionSpec, UpsertRecordInput } from "../src/index.js";

const spec: CollectionSpec = validateCollectionSpec({
  name: "movies",
  dimension: 4,
  metric: "cosine",
  shards: 8,
  fields: [
    { name: "genre", type: "string" },
    { name: "year", type: "int" },
    { name: "rating", type: "float" },
    { name: "draft", type: "bool" },
    { name: "tags", type: "string_list" },
    { name: "constructor", type: "int" },
  ],
});
const l2 = validateCollectionSpec({ name: "l2", dimension: 2, metric: "l2" });
const limits: BatchLimits = { maxBatch: 5, maxIdBytes: 256, maxMetadataBytes: 200 };

function rec(id: string, extra: Partial<Record<"vector" | "metadata", unknown>> = {}): UpsertRecordInput {
  return { id, vector: [1, 0, 0, 0], ...extra } as UpsertRecordInput;
}

/** Runs `f`, expects an InvalidArgumentError, returns it. */
function invalidArg(f: () => unknown): InvalidArgumentError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(InvalidArgumentError);
  return caught as InvalidArgumentError;
}

function upsertError(records: unknown[], l: BatchLimits = limits, s: CollectionSpec = spec): string {
  return invalidArg(() => validateUpsertBatch(s, records as UpsertRecordInput[], l)).message;
}

describe("validateUpsertBatch: accepted batches", () => {
  it("returns float32 copies, metadata JSON and shards", () => {
    const input = [1.1, -2, 0, 3e38];
    const out = validateUpsertBatch(
      spec,
      [
        { id: "a", vector: input, metadata: { genre: "drama", year: 1999, rating: 7.5, draft: false, tags: ["x", "y"], other: { nested: [1, null] } } },
        { id: "b", vector: new Float32Array([0, 0, 0.5, 0]) },
        { id: "ç😀", vector: [0, 1, 0, 0], metadata: {} },
      ],
      limits,
    );
    expect(out).toHaveLength(3);
    expect(out[0]!.vector).toBeInstanceOf(Float32Array);
    expect(Array.from(out[0]!.vector)).toEqual(input.map(Math.fround));
    expect(out[0]!.metadataJson).toBe('{"genre":"drama","year":1999,"rating":7.5,"draft":false,"tags":["x","y"],"other":{"nested":[1,null]}}');
    expect(out[1]!.metadataJson).toBe("{}");
    expect(out[2]!.metadataJson).toBe("{}");
    for (const r of out) expect(r.shard).toBe(shardOf(r.id, 8));
    expect(Object.isFrozen(out[0])).toBe(true);
  });

  it("never keeps the caller's vector", () => {
    const f = new Float32Array([1, 2, 3, 4]);
    const [r] = validateUpsertBatch(spec, [{ id: "a", vector: f }], limits);
    f[0] = 9;
    expect(r!.vector[0]).toBe(1);
  });

  it("stores non-schema metadata as it is, drops undefined members, allows absent schema fields", () => {
    const [r] = validateUpsertBatch(spec, [rec("a", { metadata: { year: undefined, free: "x", n: 1.5, deep: { a: [{ b: true }] } } })], limits);
    expect(JSON.parse(r!.metadataJson)).toEqual({ free: "x", n: 1.5, deep: { a: [{ b: true }] } });
  });

  it("accepts zero vectors under l2 and ip, and ids of exactly 256 bytes", () => {
    expect(validateUpsertBatch(l2, [{ id: "z", vector: [0, 0] }], limits)[0]!.vector).toEqual(new Float32Array(2));
    const id = "é".repeat(128); // 256 bytes
    expect(validateUpsertBatch(l2, [{ id, vector: [1, 1] }], limits)[0]!.id).toBe(id);
  });

  it("uses the default limits when none are given", () => {
    expect(DEFAULT_BATCH_LIMITS).toEqual({ maxBatch: 1000, maxIdBytes: 256, maxMetadataBytes: 65536 });
    const many = Array.from({ length: 1000 }, (_, i) => rec(`id${i}`));
    expect(validateUpsertBatch(spec, many)).toHaveLength(1000);
    expect(() => validateUpsertBatch(spec, [...many, rec("x")])).toThrow("records: 1001 records, at most 1000");
  });

  it("treats a schema field named like an Object.prototype member as data, not the prototype", () => {
    const parsed = JSON.parse('{"constructor": 3}') as Record<string, unknown>;
    expect(validateUpsertBatch(spec, [rec("a", { metadata: parsed })], limits)[0]!.metadataJson).toBe('{"constructor":3}');
    expect(upsertError([rec("a", { metadata: { constructor: "x" } })])).toBe("records[0].metadata.constructor: expected int, got string");
    // Absent: the inherited Object constructor must not be type-checked.
    expect(validateUpsertBatch(spec, [rec("a", { metadata: {} })], limits)).toHaveLength(1);
  });
});

describe("validateUpsertBatch: rejected batches", () => {
  it("empty or too large", () => {
    expect(upsertError([])).toBe("records: the batch is empty (at least 1 record)");
    expect(upsertError([1, 2, 3, 4, 5, 6].map((i) => rec(`r${i}`)))).toBe("records: 6 records, at most 5");
    expect(invalidArg(() => validateUpsertBatch(spec, "x" as unknown as UpsertRecordInput[], limits)).message).toBe("records: expected a list, got string");
  });

  it("a record that is not an object", () => {
    expect(upsertError([rec("a"), null])).toBe("records[1]: expected a record, got null");
  });

  it("bad ids", () => {
    expect(upsertError([rec("a"), rec("")])).toBe("records[1].id: empty");
    expect(upsertError([rec("a"), rec("x".repeat(300))])).toBe("records[1].id: 300 bytes, at most 256");
    expect(upsertError([rec("€".repeat(86))])).toBe("records[0].id: 258 bytes, at most 256");
    expect(upsertError([{ id: 5, vector: [1, 0, 0, 0] }])).toBe("records[0].id: expected a string, got int");
    expect(upsertError([rec("a\ud800b")])).toBe("records[0].id: not well-formed Unicode (a lone surrogate has no UTF-8 encoding)");
    expect(upsertError([rec("x".repeat(20))], { ...limits, maxIdBytes: 16 })).toBe("records[0].id: 20 bytes, at most 16");
  });

  it("duplicate ids, naming both items", () => {
    const err = invalidArg(() => validateUpsertBatch(spec, [rec("x"), rec("abc"), rec("y"), rec("z"), rec("abc")], limits));
    expect(err.message).toBe('records[4].id: duplicate of records[1].id "abc"');
    expect(err.details).toEqual({ field: "records[4].id", index: 4 });
  });

  it("wrong dimension", () => {
    expect(upsertError([rec("a"), rec("b"), rec("c"), rec("d", { vector: [1, 2, 3] })])).toBe("records[3].vector: expected 4 dimensions, got 3");
    expect(upsertError([rec("a", { vector: new Float32Array(5).fill(1) })])).toBe("records[0].vector: expected 4 dimensions, got 5");
    expect(upsertError([rec("a", { vector: "1,2,3,4" })])).toBe("records[0].vector: expected a list of numbers, got string");
    expect(upsertError([rec("a", { vector: undefined })])).toBe("records[0].vector: expected a list of numbers, got undefined");
  });

  it("NaN, Infinity and values beyond float32", () => {
    expect(upsertError([rec("a", { vector: [1, 2, 3, NaN] })])).toBe("records[0].vector[3]: NaN is not allowed");
    expect(upsertError([rec("a", { vector: [Infinity, 2, 3, 4] })])).toBe("records[0].vector[0]: Infinity is not allowed");
    expect(upsertError([rec("a", { vector: [1, -Infinity, 3, 4] })])).toBe("records[0].vector[1]: -Infinity is not allowed");
    expect(upsertError([rec("a", { vector: new Float32Array([1, NaN, 0, 0]) })])).toBe("records[0].vector[1]: NaN is not allowed");
    expect(upsertError([rec("a", { vector: [1, 1e39, 3, 4] })])).toBe("records[0].vector[1]: 1e+39 is outside the float32 range (±3.4028234663852886e38)");
    expect(upsertError([rec("a", { vector: [1, 2, "3", 4] })])).toBe("records[0].vector[2]: expected a number, got string");
    // The largest float32 and values that round to it are fine; tiny values underflow to 0.
    expect(validateUpsertBatch(spec, [rec("a", { vector: [3.4028234663852886e38, 3.4028235e38, 1e-50, 1] })], limits)).toHaveLength(1);
  });

  it("a zero vector under cosine, including one that only underflows to zero in float32", () => {
    expect(upsertError([rec("a"), rec("b"), rec("c", { vector: [0, 0, 0, 0] })])).toBe(
      "records[2].vector: a zero vector has no direction under the cosine metric",
    );
    expect(upsertError([rec("a", { vector: [1e-50, 0, -0, 0] })])).toBe("records[0].vector: a zero vector has no direction under the cosine metric");
  });

  it("metadata of the wrong shape or type", () => {
    const md = (metadata: unknown): string => upsertError([rec("a", { metadata })]);
    expect(md([1])).toBe("records[0].metadata: expected a JSON object, got list");
    expect(md("x")).toBe("records[0].metadata: expected a JSON object, got string");
    expect(md(null)).toBe("records[0].metadata: expected a JSON object, got null");
    expect(md(new Date(0))).toBe("records[0].metadata: expected a JSON object, got object");
    expect(md({ year: "1999" })).toBe("records[0].metadata.year: expected int, got string");
    expect(md({ year: 1999.5 })).toBe("records[0].metadata.year: expected int, got float");
    expect(md({ year: 2 ** 53 })).toBe("records[0].metadata.year: expected int, got 9007199254740992, outside the safe integer range ±(2^53-1)");
    expect(md({ year: null })).toBe("records[0].metadata.year: expected int, got null (omit the field instead)");
    expect(md({ rating: "7" })).toBe("records[0].metadata.rating: expected float, got string");
    expect(md({ rating: NaN })).toBe("records[0].metadata.rating: expected float, got NaN");
    expect(md({ genre: 3 })).toBe("records[0].metadata.genre: expected string, got int");
    expect(md({ draft: 1 })).toBe("records[0].metadata.draft: expected bool, got int");
    expect(md({ tags: "x" })).toBe("records[0].metadata.tags: expected a list of strings, got string");
    expect(md({ tags: ["x", 2] })).toBe("records[0].metadata.tags: expected a list of strings, but item 1 is int");
  });

  it("metadata that JSON cannot carry", () => {
    const md = (metadata: unknown): string => upsertError([rec("a", { metadata })]);
    expect(md({ free: NaN })).toBe("records[0].metadata.free: NaN is not valid JSON");
    expect(md({ free: { x: [1, Infinity] } })).toBe("records[0].metadata.free.x[1]: Infinity is not valid JSON");
    expect(md({ "odd key": { f: () => 1 } })).toBe('records[0].metadata["odd key"].f: expected a JSON value, got function');
    expect(md({ n: 1n })).toBe("records[0].metadata.n: expected a JSON value, got bigint");
    expect(md({ l: [undefined] })).toBe("records[0].metadata.l[0]: undefined is not valid JSON");
    expect(md({ d: new Map() })).toBe("records[0].metadata.d: expected a plain JSON object");
    expect(md({ s: "\udc00" })).toBe("records[0].metadata.s: not well-formed Unicode (a lone surrogate has no UTF-8 encoding)");
    expect(md({ ["k\ud800"]: 1 })).toContain("key is not well-formed Unicode");
    const cyclic: Record<string, unknown> = {};
    cyclic["self"] = cyclic;
    expect(md(cyclic)).toMatch(/^records\[0\]\.metadata(\.self)+: nested deeper than 32 levels$/);
  });

  it("oversized metadata", () => {
    expect(upsertError([rec("a"), rec("b", { metadata: { free: "x".repeat(300) } })])).toBe("records[1].metadata: 311 bytes of JSON, at most 200");
    // Counted in UTF-8 bytes, not UTF-16 units: 95 × "é" is 190 bytes, +11 for {"free":""}.
    expect(upsertError([rec("a", { metadata: { free: "é".repeat(95) } })])).toBe("records[0].metadata: 201 bytes of JSON, at most 200");
    expect(validateUpsertBatch(spec, [rec("a", { metadata: { free: "é".repeat(94) } })], limits)).toHaveLength(1);
  });

  it("reports the first bad record, in order", () => {
    expect(upsertError([rec("a"), rec("b", { vector: [1] }), rec("")])).toBe("records[1].vector: expected 4 dimensions, got 1");
  });

  it("rejects nonsensical limits as a programming error", () => {
    expect(() => validateUpsertBatch(spec, [rec("a")], { ...limits, maxIdBytes: 300 })).toThrow(RangeError);
    expect(() => validateUpsertBatch(spec, [rec("a")], { ...limits, maxBatch: 0 })).toThrow(RangeError);
  });
});

describe("validateDeleteBatch", () => {
  it("returns ids with their shards", () => {
    expect(validateDeleteBatch(spec, ["a", "b"])).toEqual([
      { id: "a", shard: shardOf("a", 8) },
      { id: "b", shard: shardOf("b", 8) },
    ]);
  });

  it("rejects empty, oversized, bad and duplicate ids", () => {
    const del = (ids: unknown[], l = { maxBatch: 3, maxIdBytes: 256 }): string => invalidArg(() => validateDeleteBatch(spec, ids as string[], l)).message;
    expect(del([])).toBe("ids: the batch is empty (at least 1 id)");
    expect(del(["a", "b", "c", "d"])).toBe("ids: 4 ids, at most 3");
    expect(del(["a", ""])).toBe("ids[1]: empty");
    expect(del(["a", "y".repeat(300)])).toBe("ids[1]: 300 bytes, at most 256");
    expect(del(["a", 3])).toBe("ids[1]: expected a string, got int");
    expect(del(["x", "abc", "abc"])).toBe('ids[2]: duplicate of ids[1] "abc"');
  });
});

describe("validateRecordId / validateQueryVector", () => {
  it("checks single ids", () => {
    expect(validateRecordId("abc")).toBe("abc");
    expect(() => validateRecordId("")).toThrow("id: empty");
    expect(() => validateRecordId("a".repeat(257), "ids[3]")).toThrow("ids[3]: 257 bytes, at most 256");
  });

  it("checks query vectors like record vectors", () => {
    expect(validateQueryVector(spec, [0, 0, 1, 0])).toEqual(new Float32Array([0, 0, 1, 0]));
    expect(() => validateQueryVector(spec, [0, 0, 0, 0])).toThrow("vector: a zero vector has no direction under the cosine metric");
    expect(() => validateQueryVector(spec, [1, 2])).toThrow("vector: expected 4 dimensions, got 2");
    expect(() => validateQueryVector(spec, [1, 2, NaN, 0])).toThrow("vector[2]: NaN is not allowed");
  });
});
