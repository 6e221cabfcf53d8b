import { InvalidArgumentError } from "@vecraft/common";
import { afterAll, describe, expect, it } from "vitest";
import { FILTER_LIMITS, compileFilter, metadataFieldExpression, validateCollectionSpec, validateUpsertBatch } from "../src/index.js";
import type { CollectionSpec } from "../src/index.js";
import { FilterHarness } from "./sqlite-harness.js";
import type { Row } from "./sqlite-harness.js";

const spec: CollectionSpec = validateCollectionSpec({
  name: "movies",
  dimension: 1,
  metric: "l2",
  fields: [
    { name: "genre", type: "string" },
    { name: "year", type: "int" },
    { name: "rating", type: "float" },
    { name: "draft", type: "bool" },
    { name: "tags", type: "string_list" },
  ],
});

function filterError(filter: unknown, s: CollectionSpec = spec): string {
  let caught: unknown;
  try {
    compileFilter(s, filter);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(InvalidArgumentError);
  return (caught as InvalidArgumentError).message;
}

// Rows as storage would hold them: validated, metadata as JSON text.
const rows: Row[] = validateUpsertBatch(
  spec,
  [
    { id: "m1", vector: [1], metadata: { genre: "drama", year: 1999, rating: 7.5, draft: false, tags: ["classic", "long"] } },
    { id: "m2", vector: [1], metadata: { genre: "comedy", year: 2005, rating: 6, draft: true, tags: [] } },
    { id: "m3", vector: [1], metadata: { genre: "drama", year: 2010, tags: ["new"] } },
    { id: "m4", vector: [1], metadata: { note: "no schema fields at all" } },
    { id: "m5", vector: [1], metadata: { genre: "Drama", year: 2000, rating: -1, draft: true, tags: ["classic"] } },
  ],
  { maxBatch: 10, maxIdBytes: 256, maxMetadataBytes: 1000 },
).map((r) => ({ id: r.id, metadataJson: r.metadataJson }));

const harness = new FilterHarness();
harness.load(rows);
afterAll(() => harness.close());

/** The ids a filter selects, checked to be the same through SQLite and through `matches`. */
function select(filter: unknown): string[] {
  const compiled = compileFilter(spec, filter);
  const viaSql = harness.selectSql(compiled);
  expect(viaSql, `SQL and matches() disagree on ${JSON.stringify(filter)}: ${compiled.sql}`).toEqual(FilterHarness.selectJs(compiled, rows));
  return viaSql;
}

describe("compileFilter: SQL shape", () => {
  it("compiles an implicit $eq to a parameterised json_extract comparison", () => {
    const f = compileFilter(spec, { genre: "drama" });
    expect(f.sql).toBe(`json_extract(metadata, '$."genre"') = ?`);
    expect(f.params).toEqual(["drama"]);
    expect(f.fields).toEqual(["genre"]);
  });

  it("matches everything for {} and for no filter", () => {
    for (const filter of [undefined, {}]) {
      const f = compileFilter(spec, filter);
      expect(f.sql).toBe("1");
      expect(f.params).toEqual([]);
      expect(f.matches({})).toBe(true);
    }
  });

  it("never splices a value into the SQL", () => {
    const evil = `x' OR 1=1; DROP TABLE records; --"`;
    const f = compileFilter(spec, { $or: [{ genre: evil }, { tags: { $in: [evil, "a"] } }, { genre: { $gt: evil } }] });
    expect(f.sql).not.toContain("DROP");
    expect(f.params).toEqual([evil, evil, "a", evil]);
    expect(f.sql.split("?").length - 1).toBe(f.params.length);
    expect(harness.selectSql(f)).toEqual([]);
  });

  it("binds bools as 1/0, because json_extract returns JSON true/false as integers", () => {
    expect(compileFilter(spec, { draft: true }).params).toEqual([1]);
    expect(compileFilter(spec, { draft: { $in: [false, true] } }).params).toEqual([0, 1]);
  });

  it("removes duplicate $in values", () => {
    expect(compileFilter(spec, { year: { $in: [1, 2, 1, 2, 3] } }).params).toEqual([1, 2, 3]);
    expect(compileFilter(spec, { rating: { $nin: [0, -0] } }).params).toEqual([0]);
  });

  it("uses the documented field expressions, and an optional column name", () => {
    const year = spec.fields.find((f) => f.name === "year")!;
    const rating = spec.fields.find((f) => f.name === "rating")!;
    expect(metadataFieldExpression(year)).toBe(`json_extract(metadata, '$."year"')`);
    expect(metadataFieldExpression(rating, "r.metadata")).toBe(`(json_extract(r.metadata, '$."rating"') + 0.0)`);
    const f = compileFilter(spec, { year: 1999 }, { column: "r.metadata" });
    expect(f.sql).toBe(`json_extract(r.metadata, '$."year"') = ?`);
    expect(() => compileFilter(spec, {}, { column: "metadata; DROP" })).toThrow(RangeError);
  });

  it("returns a frozen result", () => {
    const f = compileFilter(spec, { year: 1 });
    expect(Object.isFrozen(f)).toBe(true);
    expect(Object.isFrozen(f.params)).toBe(true);
  });
});

describe("compileFilter: semantics (SQLite and matches agree)", () => {
  it("equality and comparisons on scalars", () => {
    expect(select({ genre: "drama" })).toEqual(["m1", "m3"]);
    expect(select({ genre: { $eq: "drama" } })).toEqual(["m1", "m3"]);
    expect(select({ year: { $gte: 2000 } })).toEqual(["m2", "m3", "m5"]);
    expect(select({ year: { $gt: 1999.5, $lt: 2010 } })).toEqual(["m2", "m5"]);
    expect(select({ rating: { $lte: 6 } })).toEqual(["m2", "m5"]);
    expect(select({ rating: 6 })).toEqual(["m2"]);
    expect(select({ year: 2005.0 })).toEqual(["m2"]);
  });

  it("compares strings by code point (UTF-8 byte order), case-sensitively", () => {
    expect(select({ genre: { $lt: "drama" } })).toEqual(["m2", "m5"]); // "Drama" < "comedy" < "drama"
    expect(select({ genre: { $gte: "d" } })).toEqual(["m1", "m3"]);
  });

  it("a missing field matches $ne, $nin and $exists:false, and nothing else", () => {
    expect(select({ genre: { $ne: "drama" } })).toEqual(["m2", "m4", "m5"]);
    expect(select({ genre: { $nin: ["drama", "comedy"] } })).toEqual(["m4", "m5"]);
    expect(select({ rating: { $exists: false } })).toEqual(["m3", "m4"]);
    expect(select({ rating: { $exists: true } })).toEqual(["m1", "m2", "m5"]);
    expect(select({ rating: { $lt: 100 } })).toEqual(["m1", "m2", "m5"]);
    expect(select({ draft: { $ne: true } })).toEqual(["m1", "m3", "m4"]);
  });

  it("$not is the exact complement, missing fields included", () => {
    expect(select({ $not: { rating: { $gt: 0 } } })).toEqual(["m3", "m4", "m5"]);
    expect(select({ $not: { genre: { $ne: "drama" } } })).toEqual(["m1", "m3"]);
    expect(select({ $not: { $or: [{ year: 1999 }, { rating: 6 }] } })).toEqual(["m3", "m4", "m5"]);
    expect(select({ $not: { $not: { rating: { $gt: 0 } } } })).toEqual(["m1", "m2"]);
    expect(select({ $not: {} })).toEqual([]);
  });

  it("bools", () => {
    expect(select({ draft: true })).toEqual(["m2", "m5"]);
    expect(select({ draft: false })).toEqual(["m1"]);
    expect(select({ draft: { $in: [true, false] } })).toEqual(["m1", "m2", "m5"]);
    expect(select({ draft: { $nin: [true] } })).toEqual(["m1", "m3", "m4"]);
  });

  it("string lists: $eq and $in mean contains, $ne and $nin mean does not contain", () => {
    expect(select({ tags: "classic" })).toEqual(["m1", "m5"]);
    expect(select({ tags: { $in: ["new", "long"] } })).toEqual(["m1", "m3"]);
    expect(select({ tags: { $ne: "classic" } })).toEqual(["m2", "m3", "m4"]);
    expect(select({ tags: { $nin: ["classic", "new"] } })).toEqual(["m2", "m4"]);
    expect(select({ tags: { $exists: true } })).toEqual(["m1", "m2", "m3", "m5"]);
  });

  it("logical combinations; several keys in one object are ANDed", () => {
    expect(select({ genre: "drama", year: { $lt: 2005 } })).toEqual(["m1"]);
    expect(select({ $and: [{ genre: "drama" }, { tags: "new" }] })).toEqual(["m3"]);
    expect(select({ $or: [{ genre: "comedy" }, { tags: "new" }] })).toEqual(["m2", "m3"]);
    expect(select({ $or: [{ genre: "comedy" }], draft: true })).toEqual(["m2"]);
  });
});

describe("compileFilter: errors name the path", () => {
  it("unknown fields list the declared ones", () => {
    expect(filterError({ director: "x" })).toBe("filter.director: unknown field (declared fields: genre, year, rating, draft, tags)");
    const two = validateCollectionSpec({
      name: "c",
      dimension: 1,
      metric: "l2",
      fields: [
        { name: "genre", type: "string" },
        { name: "year", type: "int" },
      ],
    });
    expect(filterError({ $and: [{ genre: "x" }, { yaer: 1 }] }, two)).toBe("filter.$and[1].yaer: unknown field (declared fields: genre, year)");
    const none = validateCollectionSpec({ name: "c", dimension: 1, metric: "l2" });
    expect(filterError({ year: 1 }, none)).toBe("filter.year: unknown field (the collection declares no metadata fields)");
    expect(filterError({ "a b": 1 })).toBe('filter["a b"]: unknown field (declared fields: genre, year, rating, draft, tags)');
    expect(filterError({ toString: 1 })).toContain("filter.toString: unknown field");
  });

  it("values must match the field's type", () => {
    expect(filterError({ year: { $gte: "2000" } })).toBe("filter.year.$gte: expected a number, got string");
    expect(filterError({ year: "2000" })).toBe("filter.year: expected a number, got string");
    expect(filterError({ genre: 1 })).toBe("filter.genre: expected a string, got int");
    expect(filterError({ draft: "true" })).toBe("filter.draft: expected a bool, got string");
    expect(filterError({ tags: 3 })).toBe("filter.tags: expected a string, got int");
    expect(filterError({ tags: ["a"] })).toBe("filter.tags: expected a string, got list (use $in to match any of several values)");
    expect(filterError({ genre: null })).toBe('filter.genre: expected a string, got null (use {"$exists": false} to match records without the field)');
    expect(filterError({ rating: { $lt: Infinity } })).toBe("filter.rating.$lt: expected a number, got Infinity");
    expect(filterError({ genre: "\ud800" })).toBe("filter.genre: not well-formed Unicode (a lone surrogate has no UTF-8 encoding)");
    expect(filterError({ genre: { $ne: { $eq: "x" } } })).toBe("filter.genre.$ne: expected a string, got object");
  });

  it("$in and $nin need a non-empty list of at most 1024 values of the field's type", () => {
    expect(filterError({ year: { $in: [] } })).toBe("filter.year.$in: expected a non-empty list of values, got an empty list");
    expect(filterError({ year: { $nin: 3 } })).toBe("filter.year.$nin: expected a non-empty list of values, got int");
    expect(filterError({ year: { $in: [1, 2, "3"] } })).toBe("filter.year.$in[2]: expected a number, got string");
    const many = Array.from({ length: 1025 }, (_, i) => i);
    expect(filterError({ year: { $in: many } })).toBe("filter.year.$in: at most 1024 values, got 1025");
    expect(compileFilter(spec, { year: { $in: many.slice(0, 1024) } }).params).toHaveLength(1024);
  });

  it("$exists needs a bool", () => {
    expect(filterError({ year: { $exists: 1 } })).toBe("filter.year.$exists: expected true or false, got int");
  });

  it("ordering is not defined for bools and lists", () => {
    expect(filterError({ draft: { $gt: false } })).toBe("filter.draft.$gt: not supported for bool fields (use $eq, $ne, $in, $nin or $exists)");
    expect(filterError({ tags: { $lte: "x" } })).toBe("filter.tags.$lte: not supported for string_list fields (use $eq, $ne, $in, $nin or $exists)");
  });

  it("unknown operators are named", () => {
    expect(filterError({ year: { $regex: "x" } })).toBe(
      "filter.year.$regex: unknown operator (expected one of $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists)",
    );
    expect(filterError({ year: { gte: 1 } })).toBe(
      "filter.year.gte: unknown operator (expected one of $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists; nested fields are not supported)",
    );
    expect(filterError({ $nor: [{ year: 1 }] })).toBe("filter.$nor: unknown operator (expected $and, $or, $not or a field name)");
    expect(filterError({ $eq: 1 })).toBe(
      'filter.$eq: unknown operator (expected $and, $or, $not or a field name; $eq goes inside a field\'s condition, e.g. {"field": {"$eq": ...}})',
    );
    expect(filterError({ year: {} })).toBe("filter.year: expected a value or an operator ($eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists)");
  });

  it("logical operators need filters", () => {
    expect(filterError([])).toBe("filter: expected a JSON object (a filter), got list");
    expect(filterError("year > 3")).toBe("filter: expected a JSON object (a filter), got string");
    expect(filterError(null)).toBe("filter: expected a JSON object (a filter), got null");
    expect(filterError({ $and: [] })).toBe("filter.$and: expected a non-empty list of filters, got an empty list");
    expect(filterError({ $or: { year: 1 } })).toBe("filter.$or: expected a non-empty list of filters, got object");
    expect(filterError({ $or: [{ year: 1 }, "x"] })).toBe("filter.$or[1]: expected a JSON object (a filter), got string");
    expect(filterError({ $not: [{ year: 1 }] })).toBe("filter.$not: expected a JSON object (a filter), got list");
  });

  it(`limits nesting to ${FILTER_LIMITS.maxDepth} levels`, () => {
    const nest = (levels: number): unknown => {
      let f: unknown = { year: 1 };
      for (let i = 1; i < levels; i++) f = { $not: f };
      return f;
    };
    expect(compileFilter(spec, nest(16)).matches({ year: 2 })).toBe(true);
    expect(filterError(nest(17))).toBe(`filter${".$not".repeat(16)}: nested deeper than 16 levels`);
    // A hostile depth fails fast instead of overflowing the stack.
    expect(filterError(nest(100_000))).toContain("nested deeper than 16 levels");
  });

  it(`limits a filter to ${FILTER_LIMITS.maxClauses} clauses`, () => {
    const ors = (n: number): unknown => ({ $or: Array.from({ length: n }, (_, i) => ({ year: i })) });
    expect(() => compileFilter(spec, ors(255))).not.toThrow(); // 255 comparisons + the $or
    expect(filterError(ors(256))).toBe("filter: more than 256 clauses (each comparison and each $and, $or, $not counts)");
  });

  it(`limits the total number of values to ${FILTER_LIMITS.maxParams}`, () => {
    const block = (k: number): unknown => ({ year: { $in: Array.from({ length: 1024 }, (_, i) => k * 1024 + i) } });
    expect(compileFilter(spec, { $or: Array.from({ length: 8 }, (_, k) => block(k)) }).params).toHaveLength(8192);
    expect(filterError({ $or: Array.from({ length: 9 }, (_, k) => block(k)) })).toBe("filter: more than 8192 values in total");
  });
});
