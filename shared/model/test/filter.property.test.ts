// Property: for random schemas, random stored metadata and random filters, the compiled
// SQL run by a real SQLite selects exactly the rows that `matches` accepts.
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { compileFilter, validateCollectionSpec, validateUpsertBatch } from "../src/index.js";
import type { CollectionSpec, FieldSpec, FieldTypeName } from "../src/index.js";
import { FilterHarness } from "./sqlite-harness.js";
import type { Row } from "./sqlite-harness.js";

const harness = new FilterHarness();
afterAll(() => harness.close());

// Field names include ones that collide with Object.prototype members.
const NAMES = ["a", "b", "year", "tags", "constructor", "__proto__", "toString", "_x"] as const;
const TYPES: readonly FieldTypeName[] = ["string", "int", "float", "bool", "string_list"];

// Small domains so that equality and ordering hit often; edge values where SQLite and
// JavaScript could disagree (NUL, astral vs U+E000..U+FFFF, -0, huge integral doubles).
const stringArb = fc.oneof(
  fc.constantFrom("", "a", "b", "ab", "B", "é", "\u0000", "a\u0000", "😀", "\uffff", "\ue000", "z"),
  fc.string({ unit: "binary", maxLength: 3 }),
);
const intArb = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 31));
const floatArb = fc.oneof(
  fc.constantFrom(0, -0, 0.5, -1.5, 1, 2, 1e300, -1e-300, 5e-324, 1234567890123456768, 2 ** 53 + 2, 1e21, 0.1 + 0.2),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const numberArb = fc.oneof(intArb, floatArb);

function valueArb(type: FieldTypeName): fc.Arbitrary<unknown> {
  switch (type) {
    case "string":
      return stringArb;
    case "int":
      return intArb;
    case "float":
      return floatArb;
    case "bool":
      return fc.boolean();
    case "string_list":
      return fc.array(stringArb, { maxLength: 3 });
  }
}

/** A comparison value for a field (numbers of either kind for int and float fields). */
function operandArb(type: FieldTypeName): fc.Arbitrary<unknown> {
  switch (type) {
    case "string":
    case "string_list":
      return stringArb;
    case "int":
    case "float":
      return numberArb;
    case "bool":
      return fc.boolean();
  }
}

const schemaArb: fc.Arbitrary<CollectionSpec> = fc
  .uniqueArray(fc.constantFrom(...NAMES), { minLength: 1, maxLength: 5 })
  .chain((names) => fc.tuple(fc.constant(names), fc.array(fc.constantFrom(...TYPES), { minLength: names.length, maxLength: names.length })))
  .map(([names, types]) => validateCollectionSpec({ name: "prop", dimension: 1, metric: "l2", fields: names.map((name, i) => ({ name, type: types[i]! })) }));

/** Metadata: each schema field present (of its type) or absent, plus free keys. */
function metadataArb(spec: CollectionSpec): fc.Arbitrary<Record<string, unknown>> {
  const entries = spec.fields.map((f) =>
    fc.option(
      valueArb(f.type).map((v) => [f.name, v] as [string, unknown]),
      { nil: undefined },
    ),
  );
  const extra = fc.option(fc.constantFrom<[string, unknown]>(["free", 1], ["free", "x"], ["nested", { a: [1, "b"] }]), { nil: undefined });
  // Object.fromEntries defines own properties, so "__proto__" is data, as JSON.parse makes it.
  return fc.tuple(fc.tuple(...entries), extra).map(([es, x]) => Object.fromEntries([...es, x].filter((e): e is [string, unknown] => e !== undefined)));
}

function conditionArb(field: FieldSpec): fc.Arbitrary<unknown> {
  const v = operandArb(field.type);
  const ops: fc.Arbitrary<[string, unknown]>[] = [
    v.map((x) => ["$eq", x]),
    v.map((x) => ["$ne", x]),
    fc.array(v, { minLength: 1, maxLength: 4 }).map((xs) => ["$in", xs]),
    fc.array(v, { minLength: 1, maxLength: 4 }).map((xs) => ["$nin", xs]),
    fc.boolean().map((b) => ["$exists", b]),
  ];
  if (field.type !== "bool" && field.type !== "string_list") {
    for (const op of ["$gt", "$gte", "$lt", "$lte"]) ops.push(v.map((x) => [op, x]));
  }
  return fc.oneof(
    v, // implicit $eq
    fc.uniqueArray(fc.oneof(...ops), { minLength: 1, maxLength: 3, selector: ([op]) => op }).map((pairs) => Object.fromEntries(pairs)),
  );
}

function filterArb(spec: CollectionSpec): fc.Arbitrary<unknown> {
  const fieldClause = fc.constantFrom(...spec.fields).chain((f) => conditionArb(f).map((c) => [f.name, c] as [string, unknown]));
  const { filter } = fc.letrec<{ filter: unknown }>((tie) => ({
    filter: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      fc.uniqueArray(fieldClause, { minLength: 0, maxLength: 3, selector: ([k]) => k }).map((es) => Object.fromEntries(es)),
      fc.array(tie("filter"), { minLength: 1, maxLength: 3 }).map((fs) => ({ $and: fs })),
      fc.array(tie("filter"), { minLength: 1, maxLength: 3 }).map((fs) => ({ $or: fs })),
      tie("filter").map((f) => ({ $not: f })),
      fc.tuple(fieldClause, tie("filter")).map(([[k, c], f]) => ({ [k]: c, $or: [f] })),
    ),
  }));
  return filter;
}

const caseArb = schemaArb.chain((spec) =>
  fc.record({
    spec: fc.constant(spec),
    metadata: fc.array(metadataArb(spec), { minLength: 1, maxLength: 25 }),
    filters: fc.array(filterArb(spec), { minLength: 1, maxLength: 6 }),
  }),
);

describe("compileFilter: SQLite and matches() agree", () => {
  it("over random schemas, metadata and filters", () => {
    let nonTrivial = 0;
    fc.assert(
      fc.property(caseArb, ({ spec, metadata, filters }) => {
        const validated = validateUpsertBatch(
          spec,
          metadata.map((m, i) => ({ id: `r${i}`, vector: [1], metadata: m })),
          { maxBatch: 100, maxIdBytes: 256, maxMetadataBytes: 1 << 20 },
        );
        const rows: Row[] = validated.map((r) => ({ id: r.id, metadataJson: r.metadataJson }));
        harness.load(rows);
        for (const filter of filters) {
          const compiled = compileFilter(spec, filter);
          expect(compiled.sql.split("?").length - 1).toBe(compiled.params.length);
          const viaSql = harness.selectSql(compiled);
          const viaJs = FilterHarness.selectJs(compiled, rows);
          expect(viaSql, `filter ${JSON.stringify(filter)}\nsql ${compiled.sql}\nparams ${JSON.stringify(compiled.params)}`).toEqual(viaJs);
          // The original objects (not parsed back from JSON) give the same answers.
          expect(metadata.map((m, i) => (compiled.matches(m) ? `r${i}` : "")).filter((id) => id !== "")).toEqual(
            rows.filter((r) => viaJs.includes(r.id)).map((r) => r.id),
          );
          if (viaSql.length > 0 && viaSql.length < rows.length) nonTrivial++;
        }
      }),
      { numRuns: 300 },
    );
    // The generators are useful only if filters often split the rows.
    expect(nonTrivial).toBeGreaterThan(100);
  });

  it("$not(f) selects exactly the complement of f", () => {
    fc.assert(
      fc.property(caseArb, ({ spec, metadata, filters }) => {
        const rows: Row[] = validateUpsertBatch(
          spec,
          metadata.map((m, i) => ({ id: `r${i}`, vector: [1], metadata: m })),
          { maxBatch: 100, maxIdBytes: 256, maxMetadataBytes: 1 << 20 },
        ).map((r) => ({ id: r.id, metadataJson: r.metadataJson }));
        harness.load(rows);
        for (const filter of filters) {
          const yes = harness.selectSql(compileFilter(spec, filter));
          const no = harness.selectSql(compileFilter(spec, { $not: filter }));
          expect([...yes, ...no].sort()).toEqual(rows.map((r) => r.id).sort());
          expect(yes.filter((id) => no.includes(id))).toEqual([]);
        }
      }),
      { numRuns: 150 },
    );
  });
});
