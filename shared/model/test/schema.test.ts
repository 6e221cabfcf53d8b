import { create } from "@bufbuild/protobuf";
import { InvalidArgumentError } from "@vecraft/common";
import { CollectionSchema, CreateCollectionRequestSchema, FieldType, Metric } from "@vecraft/rpc";
import { describe, expect, it } from "vitest";
import { COLLECTION_LIMITS, specFromProto, specToProto, validateCollectionSpec } from "../src/index.js";
import type { CollectionSpecInput } from "../src/index.js";

const base: CollectionSpecInput = { name: "movies", dimension: 128, metric: "cosine" };

function rejects(input: unknown, message: string, field?: string): void {
  let caught: unknown;
  try {
    validateCollectionSpec(input as CollectionSpecInput);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(InvalidArgumentError);
  const err = caught as InvalidArgumentError;
  expect(err.message).toBe(message);
  if (field !== undefined) expect(err.details?.["field"]).toBe(field);
}

describe("validateCollectionSpec", () => {
  it("fills in the defaults that gateway.proto documents", () => {
    const spec = validateCollectionSpec(base);
    expect(spec).toEqual({
      name: "movies",
      dimension: 128,
      metric: "cosine",
      shards: 1,
      replicationFactor: 1,
      hnsw: { m: 16, efConstruction: 128, efSearch: 64 },
      fields: [],
    });
  });

  it("treats 0 as unset, like proto3", () => {
    const spec = validateCollectionSpec({ ...base, shards: 0, replicationFactor: 0, hnsw: { m: 0, efConstruction: 0, efSearch: 0 } });
    expect(spec.shards).toBe(1);
    expect(spec.replicationFactor).toBe(1);
    expect(spec.hnsw).toEqual({ m: 16, efConstruction: 128, efSearch: 64 });
  });

  it("returns a deeply frozen plain object", () => {
    const spec = validateCollectionSpec({ ...base, fields: [{ name: "year", type: "int" }] });
    expect(Object.isFrozen(spec)).toBe(true);
    expect(Object.isFrozen(spec.hnsw)).toBe(true);
    expect(Object.isFrozen(spec.fields)).toBe(true);
    expect(Object.isFrozen(spec.fields[0])).toBe(true);
    expect(Object.getPrototypeOf(spec)).toBe(Object.prototype);
  });

  it("keeps explicit values and field order, and accepts enum numbers", () => {
    const spec = validateCollectionSpec({
      name: "a-B_9",
      dimension: 4096,
      metric: Metric.IP,
      shards: 256,
      replicationFactor: 5,
      hnsw: { m: 128, efConstruction: 4096, efSearch: 1 },
      fields: [
        { name: "year", type: FieldType.INT, indexed: true },
        { name: "_genre", type: "string" },
        { name: "tags", type: "string_list" },
        { name: "score", type: "float" },
        { name: "draft", type: FieldType.BOOL },
      ],
    });
    expect(spec.metric).toBe("ip");
    expect(spec.fields).toEqual([
      { name: "year", type: "int", indexed: true },
      { name: "_genre", type: "string", indexed: false },
      { name: "tags", type: "string_list", indexed: false },
      { name: "score", type: "float", indexed: false },
      { name: "draft", type: "bool", indexed: false },
    ]);
    expect(spec.hnsw).toEqual({ m: 128, efConstruction: 4096, efSearch: 1 });
  });

  it("takes a CreateCollectionRequest message as it is", () => {
    const req = create(CreateCollectionRequestSchema, {
      name: "docs",
      dimension: 3,
      metric: Metric.L2,
      fields: [{ name: "lang", type: FieldType.STRING, indexed: true }],
      requestId: "r1",
    });
    const spec = validateCollectionSpec(req);
    expect(spec).toMatchObject({ name: "docs", dimension: 3, metric: "l2", shards: 1, fields: [{ name: "lang", type: "string", indexed: true }] });
  });

  it("accepts names at the length limits", () => {
    expect(validateCollectionSpec({ ...base, name: "a" + "b".repeat(63) }).name).toHaveLength(64);
    const f = "_" + "x".repeat(63);
    expect(validateCollectionSpec({ ...base, fields: [{ name: f, type: "bool" }] }).fields[0]!.name).toBe(f);
    const many = Array.from({ length: COLLECTION_LIMITS.maxFields }, (_, i) => ({ name: `f${i}`, type: "int" as const }));
    expect(validateCollectionSpec({ ...base, fields: many }).fields).toHaveLength(64);
  });

  describe("rejects, naming the field", () => {
    it("bad names", () => {
      rejects({ ...base, name: "" }, "name: required", "name");
      rejects({ ...base, name: 7 }, "name: expected a string, got int", "name");
      const bad = "does not match [a-zA-Z][a-zA-Z0-9_-]{0,63} (a letter, then up to 63 letters, digits, _ or -)";
      rejects({ ...base, name: "1abc" }, `name: "1abc" ${bad}`);
      rejects({ ...base, name: "_abc" }, `name: "_abc" ${bad}`);
      rejects({ ...base, name: "a b" }, `name: "a b" ${bad}`);
      rejects({ ...base, name: "a.b" }, `name: "a.b" ${bad}`);
      rejects({ ...base, name: "a" + "b".repeat(64) }, `name: ${JSON.stringify("a" + "b".repeat(64))} ${bad}`);
    });

    it("dimension out of 1..4096", () => {
      rejects({ ...base, dimension: 0 }, "dimension: 0 is out of range 1..4096", "dimension");
      rejects({ ...base, dimension: 4097 }, "dimension: 4097 is out of range 1..4096");
      rejects({ ...base, dimension: 1.5 }, "dimension: expected an integer, got 1.5");
      rejects({ ...base, dimension: "128" }, 'dimension: expected an integer, got "128"');
      rejects({ ...base, dimension: undefined }, "dimension: expected an integer, got undefined");
    });

    it("a missing or unknown metric", () => {
      rejects({ ...base, metric: Metric.UNSPECIFIED }, "metric: required (cosine, l2 or ip)", "metric");
      rejects({ ...base, metric: undefined }, "metric: required (cosine, l2 or ip)");
      rejects({ ...base, metric: "dot" }, 'metric: unknown metric "dot" (expected cosine, l2 or ip)');
      rejects({ ...base, metric: 9 }, "metric: unknown metric 9 (expected cosine, l2 or ip)");
    });

    it("shards and replication factor out of range", () => {
      rejects({ ...base, shards: 257 }, "shards: 257 is out of range 1..256", "shards");
      rejects({ ...base, shards: -1 }, "shards: -1 is out of range 1..256");
      rejects({ ...base, replicationFactor: 6 }, "replication_factor: 6 is out of range 1..5", "replication_factor");
    });

    it("HNSW parameters out of range", () => {
      rejects({ ...base, hnsw: { m: 1 } }, "hnsw.m: 1 is out of range 2..128", "hnsw.m");
      rejects({ ...base, hnsw: { m: 129 } }, "hnsw.m: 129 is out of range 2..128");
      rejects({ ...base, hnsw: { efConstruction: 4097 } }, "hnsw.ef_construction: 4097 is out of range 1..4096", "hnsw.ef_construction");
      rejects({ ...base, hnsw: { efSearch: 5000 } }, "hnsw.ef_search: 5000 is out of range 1..4096", "hnsw.ef_search");
      rejects({ ...base, hnsw: 3 }, "hnsw: expected an object, got int");
    });

    it("bad metadata fields", () => {
      rejects({ ...base, fields: {} }, "fields: expected a list, got object");
      const tooMany = Array.from({ length: 65 }, (_, i) => ({ name: `f${i}`, type: "int" }));
      rejects({ ...base, fields: tooMany }, "fields: at most 64 fields, got 65", "fields");
      rejects({ ...base, fields: [null] }, "fields[0]: expected an object, got null");
      rejects({ ...base, fields: [{ type: "int" }] }, "fields[0].name: required", "fields[0].name");
      const bad = "does not match [a-zA-Z_][a-zA-Z0-9_]{0,63} (a letter or _, then up to 63 letters, digits or _)";
      rejects(
        {
          ...base,
          fields: [
            { name: "ok", type: "int" },
            { name: "2x", type: "int" },
          ],
        },
        `fields[1].name: "2x" ${bad}`,
        "fields[1].name",
      );
      rejects({ ...base, fields: [{ name: "a-b", type: "int" }] }, `fields[0].name: "a-b" ${bad}`);
      rejects({ ...base, fields: [{ name: "$and", type: "int" }] }, `fields[0].name: "$and" ${bad}`);
      rejects({ ...base, fields: [{ name: "a.b", type: "int" }] }, `fields[0].name: "a.b" ${bad}`);
      rejects(
        {
          ...base,
          fields: [
            { name: "year", type: "int" },
            { name: "genre", type: "string" },
            { name: "year", type: "float" },
          ],
        },
        'fields[2].name: duplicate of fields[0].name "year"',
        "fields[2].name",
      );
      rejects({ ...base, fields: [{ name: "x" }] }, "fields[0].type: required (string, int, float, bool or string_list)", "fields[0].type");
      rejects({ ...base, fields: [{ name: "x", type: FieldType.UNSPECIFIED }] }, "fields[0].type: required (string, int, float, bool or string_list)");
      rejects({ ...base, fields: [{ name: "x", type: "date" }] }, 'fields[0].type: unknown type "date" (expected string, int, float, bool or string_list)');
      rejects({ ...base, fields: [{ name: "x", type: 6 }] }, "fields[0].type: unknown type 6 (expected string, int, float, bool or string_list)");
      rejects({ ...base, fields: [{ name: "x", type: "int", indexed: "yes" }] }, "fields[0].indexed: expected true or false, got string");
    });

    it("a non-object", () => {
      rejects(null, "collection: expected an object, got null");
    });
  });
});

describe("specToProto / specFromProto", () => {
  it("round-trips through the Collection message", () => {
    const spec = validateCollectionSpec({
      ...base,
      metric: "l2",
      shards: 8,
      replicationFactor: 3,
      hnsw: { m: 32, efConstruction: 200, efSearch: 100 },
      fields: [
        { name: "year", type: "int", indexed: true },
        { name: "tags", type: "string_list" },
      ],
    });
    const msg = specToProto(spec, 123n);
    expect(msg.$typeName).toBe("vecraft.v1.Collection");
    expect(msg.metric).toBe(Metric.L2);
    expect(msg.replicationFactor).toBe(3);
    expect(msg.createdTs).toBe(123n);
    expect(msg.hnsw).toMatchObject({ m: 32, efConstruction: 200, efSearch: 100 });
    expect(msg.fields.map((f) => [f.name, f.type, f.indexed])).toEqual([
      ["year", FieldType.INT, true],
      ["tags", FieldType.STRING_LIST, false],
    ]);
    expect(specFromProto(msg)).toEqual(spec);
  });

  it("fills in defaults when reading a message without them", () => {
    const msg = create(CollectionSchema, { name: "c", dimension: 2, metric: Metric.COSINE });
    expect(specFromProto(msg)).toMatchObject({ shards: 1, replicationFactor: 1, hnsw: { m: 16, efConstruction: 128, efSearch: 64 } });
  });

  it("rejects an invalid catalog entry instead of trusting it", () => {
    const msg = create(CollectionSchema, { name: "c", dimension: 0, metric: Metric.COSINE });
    expect(() => specFromProto(msg)).toThrow("dimension: 0 is out of range 1..4096");
  });
});
