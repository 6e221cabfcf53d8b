// The metadata filter language: a JSON object in the style of MongoDB and Pinecone,
// validated against the collection's schema and compiled twice, to one parameterised
// SQLite expression and to a JavaScript predicate with the same meaning.
//
// Why the SQL looks the way it does:
// - Values only ever travel as `?` parameters. Field names are spliced into the JSON path
//   literal, but only names declared in the schema, which match [a-zA-Z_][a-zA-Z0-9_]*;
//   a literal path (not a parameter) is what lets an expression index on the same
//   `json_extract` serve the query.
// - A missing field makes `json_extract` NULL, and SQL's three-valued logic would then
//   turn `NOT (x = ?)` into NULL (no match) where the predicate says true. AND and OR of
//   atoms that are NULL only when false stay correct under "NULL means false", so only
//   `$not` needs care: it is compiled as `NOT IFNULL(inner, 0)`. `$ne` and `$nin` match a
//   missing field (MongoDB's semantics) and are written to be two-valued.
// - Float fields are compared as `json_extract(..) + 0.0`: JSON.stringify writes a large
//   integral double such as 1234567890123456768 as "1234567890123456800", which SQLite
//   reads back as that exact 64-bit integer; converting to REAL gives back the double.
import type { CollectionSpec, FieldSpec, FieldTypeName } from "./schema.js";
import { compareCodePoints, describeType, invalid, isPlainObject, isWellFormed, ownValue, pathKey } from "./util.js";

/** Bounds on one filter. */
export const FILTER_LIMITS = Object.freeze({
  /** Nesting of filter objects: the top level is 1, each `$and`/`$or` item or `$not` adds 1. */
  maxDepth: 16,
  /** Comparisons (each operator on a field) plus logical operators (`$and`, `$or`, `$not`). */
  maxClauses: 256,
  /** Values in one `$in` or `$nin` list. */
  maxInValues: 1024,
  /** SQL parameters in total, well below SQLite's default limit of 32766. */
  maxParams: 8192,
});

/** A filter compiled against one collection schema. */
export interface CompiledFilter {
  /**
   * A boolean SQL expression over the metadata JSON column: true (1) for exactly the rows
   * `matches` accepts, false (0) or NULL for the others. Meant for a WHERE clause.
   */
  readonly sql: string;
  /** The values of the `?` placeholders in `sql`, in order. */
  readonly params: readonly (string | number | bigint)[];
  /** The schema fields the filter names, in order of first appearance. */
  readonly fields: readonly string[];
  /** Evaluates the filter on a record's metadata (as stored: validated by `validateUpsertBatch`). */
  matches(metadata: Readonly<Record<string, unknown>>): boolean;
}

export interface CompileFilterOptions {
  /** The column holding the metadata JSON text, optionally qualified (`r.metadata`). Default `metadata`. */
  readonly column?: string | undefined;
}

type Scalar = string | number | boolean;
type CmpOp = "$eq" | "$ne" | "$gt" | "$gte" | "$lt" | "$lte";

type Node =
  | { readonly kind: "all" }
  | { readonly kind: "and" | "or"; readonly children: readonly Node[] }
  | { readonly kind: "not"; readonly child: Node }
  | { readonly kind: "cmp"; readonly field: FieldSpec; readonly op: CmpOp; readonly value: Scalar }
  | { readonly kind: "in"; readonly field: FieldSpec; readonly negate: boolean; readonly values: readonly Scalar[]; readonly set: ReadonlySet<Scalar> }
  | { readonly kind: "exists"; readonly field: FieldSpec; readonly exists: boolean };

const FIELD_OPERATORS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"] as const;
type FieldOp = (typeof FIELD_OPERATORS)[number];
const FIELD_OPERATOR_SET: ReadonlySet<string> = new Set(FIELD_OPERATORS);
const ORDERING: ReadonlySet<string> = new Set(["$gt", "$gte", "$lt", "$lte"]);
const SQL_CMP: Readonly<Record<"$gt" | "$gte" | "$lt" | "$lte", string>> = { $gt: ">", $gte: ">=", $lt: "<", $lte: "<=" };

const SAFE_FIELD = /^[a-zA-Z_][a-zA-Z0-9_]{0,63}$/;
const SAFE_COLUMN = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;

function checkColumn(column: string): string {
  if (!SAFE_COLUMN.test(column)) {
    throw new RangeError(`compileFilter: column must be an identifier or table.identifier, got ${JSON.stringify(column)}`);
  }
  return column;
}

function jsonPath(field: FieldSpec): string {
  // Defence in depth: the schema validator already guarantees this.
  if (!SAFE_FIELD.test(field.name)) {
    throw new RangeError(`field name ${JSON.stringify(field.name)} is not a schema identifier`);
  }
  return `'$."${field.name}"'`;
}

/**
 * The SQL expression the filter compiler uses for a schema field, e.g.
 * `json_extract(metadata, '$."year"')` (float fields: `(json_extract(...) + 0.0)`). A storage
 * node that indexes a field should create its expression index on exactly this text.
 * For string_list fields it is the list's JSON text; filters on them use `json_each`.
 */
export function metadataFieldExpression(field: FieldSpec, column = "metadata"): string {
  const raw = `json_extract(${checkColumn(column)}, ${jsonPath(field)})`;
  return field.type === "float" ? `(${raw} + 0.0)` : raw;
}

interface ParseState {
  readonly spec: CollectionSpec;
  readonly byName: ReadonlyMap<string, FieldSpec>;
  readonly fieldsUsed: Set<string>;
  clauses: number;
  params: number;
}

function addClause(st: ParseState): void {
  st.clauses += 1;
  if (st.clauses > FILTER_LIMITS.maxClauses) {
    throw invalid("filter", `more than ${FILTER_LIMITS.maxClauses} clauses (each comparison and each $and, $or, $not counts)`);
  }
}

function addParams(st: ParseState, n: number): void {
  st.params += n;
  if (st.params > FILTER_LIMITS.maxParams) {
    throw invalid("filter", `more than ${FILTER_LIMITS.maxParams} values in total`);
  }
}

function declaredFields(spec: CollectionSpec): string {
  return spec.fields.length === 0 ? "the collection declares no metadata fields" : `declared fields: ${spec.fields.map((f) => f.name).join(", ")}`;
}

function conjunction(nodes: Node[]): Node {
  if (nodes.length === 0) return { kind: "all" };
  if (nodes.length === 1) return nodes[0]!;
  return { kind: "and", children: nodes };
}

function parseFilter(st: ParseState, v: unknown, path: string, depth: number): Node {
  if (depth > FILTER_LIMITS.maxDepth) {
    throw invalid(path, `nested deeper than ${FILTER_LIMITS.maxDepth} levels`);
  }
  if (!isPlainObject(v)) {
    throw invalid(path, `expected a JSON object (a filter), got ${describeType(v)}`);
  }
  const nodes: Node[] = [];
  for (const [key, value] of Object.entries(v)) {
    const kpath = `${path}${pathKey(key)}`;
    if (key === "$and" || key === "$or") {
      addClause(st);
      if (!Array.isArray(value) || value.length === 0) {
        throw invalid(kpath, `expected a non-empty list of filters, got ${Array.isArray(value) ? "an empty list" : describeType(value)}`);
      }
      const children = (value as unknown[]).map((item, i) => parseFilter(st, item, `${kpath}[${i}]`, depth + 1));
      nodes.push(children.length === 1 ? children[0]! : { kind: key === "$and" ? "and" : "or", children });
    } else if (key === "$not") {
      addClause(st);
      nodes.push({ kind: "not", child: parseFilter(st, value, kpath, depth + 1) });
    } else if (key.startsWith("$")) {
      const hint = FIELD_OPERATOR_SET.has(key) ? `; ${key} goes inside a field's condition, e.g. {"field": {"${key}": ...}}` : "";
      throw invalid(kpath, `unknown operator (expected $and, $or, $not or a field name${hint})`);
    } else {
      const field = st.byName.get(key);
      if (field === undefined) {
        throw invalid(kpath, `unknown field (${declaredFields(st.spec)})`);
      }
      st.fieldsUsed.add(field.name);
      nodes.push(parseCondition(st, field, value, kpath));
    }
  }
  return conjunction(nodes);
}

function expectedType(type: FieldTypeName): string {
  switch (type) {
    case "string":
    case "string_list":
      return "a string";
    case "int":
    case "float":
      return "a number";
    case "bool":
      return "a bool";
  }
}

/** Checks one comparison value against the field's type. */
function checkValue(field: FieldSpec, v: unknown, path: string): Scalar {
  let ok: boolean;
  switch (field.type) {
    case "string":
    case "string_list":
      ok = typeof v === "string";
      if (ok && !isWellFormed(v as string)) {
        throw invalid(path, "not well-formed Unicode (a lone surrogate has no UTF-8 encoding)");
      }
      break;
    case "int":
    case "float":
      ok = typeof v === "number" && Number.isFinite(v);
      break;
    case "bool":
      ok = typeof v === "boolean";
      break;
  }
  if (!ok) {
    let hint = "";
    if (v === null) hint = ' (use {"$exists": false} to match records without the field)';
    else if (Array.isArray(v)) hint = " (use $in to match any of several values)";
    throw invalid(path, `expected ${expectedType(field.type)}, got ${describeType(v)}${hint}`);
  }
  return v as Scalar;
}

function parseCondition(st: ParseState, field: FieldSpec, v: unknown, path: string): Node {
  if (!isPlainObject(v)) {
    // A bare value is an implicit $eq.
    addClause(st);
    addParams(st, 1);
    return { kind: "cmp", field, op: "$eq", value: checkValue(field, v, path) };
  }
  const entries = Object.entries(v);
  if (entries.length === 0) {
    throw invalid(path, `expected a value or an operator (${FIELD_OPERATORS.join(", ")})`);
  }
  const nodes: Node[] = [];
  for (const [op, arg] of entries) {
    const opath = `${path}${pathKey(op)}`;
    if (!FIELD_OPERATOR_SET.has(op)) {
      const hint = op.startsWith("$") ? "" : "; nested fields are not supported";
      throw invalid(opath, `unknown operator (expected one of ${FIELD_OPERATORS.join(", ")}${hint})`);
    }
    addClause(st);
    nodes.push(parseOperator(st, field, op as FieldOp, arg, opath));
  }
  return conjunction(nodes);
}

function parseOperator(st: ParseState, field: FieldSpec, op: FieldOp, arg: unknown, path: string): Node {
  switch (op) {
    case "$exists":
      if (typeof arg !== "boolean") {
        throw invalid(path, `expected true or false, got ${describeType(arg)}`);
      }
      return { kind: "exists", field, exists: arg };
    case "$in":
    case "$nin": {
      if (!Array.isArray(arg) || arg.length === 0) {
        throw invalid(path, `expected a non-empty list of values, got ${Array.isArray(arg) ? "an empty list" : describeType(arg)}`);
      }
      const items = arg as unknown[];
      if (items.length > FILTER_LIMITS.maxInValues) {
        throw invalid(path, `at most ${FILTER_LIMITS.maxInValues} values, got ${items.length}`);
      }
      const values: Scalar[] = [];
      const set = new Set<Scalar>();
      items.forEach((item, i) => {
        const value = checkValue(field, item, `${path}[${i}]`);
        // Set uses SameValueZero: 0 and -0 are one value, as they are in SQLite.
        if (!set.has(value)) {
          set.add(value);
          values.push(value);
        }
      });
      addParams(st, values.length);
      return { kind: "in", field, negate: op === "$nin", values, set };
    }
    default:
      if (ORDERING.has(op) && (field.type === "bool" || field.type === "string_list")) {
        throw invalid(path, `not supported for ${field.type} fields (use $eq, $ne, $in, $nin or $exists)`);
      }
      addParams(st, 1);
      return { kind: "cmp", field, op, value: checkValue(field, arg, path) };
  }
}

// ---- SQL ----------------------------------------------------------------------------

function sqlParam(v: Scalar): string | number {
  // json_extract returns JSON true/false as the integers 1/0.
  return typeof v === "boolean" ? (v ? 1 : 0) : v;
}

function toSql(node: Node, column: string, params: (string | number | bigint)[]): string {
  switch (node.kind) {
    case "all":
      return "1";
    case "and":
    case "or":
      return node.children.map((c) => `(${toSql(c, column, params)})`).join(node.kind === "and" ? " AND " : " OR ");
    case "not":
      return `NOT IFNULL((${toSql(node.child, column, params)}), 0)`;
    case "exists":
      return `${metadataFieldExpression(node.field, column)} ${node.exists ? "IS NOT NULL" : "IS NULL"}`;
    case "cmp": {
      params.push(sqlParam(node.value));
      if (node.field.type === "string_list") {
        const contains = `EXISTS (SELECT 1 FROM json_each(${column}, ${jsonPath(node.field)}) WHERE value = ?)`;
        // Only $eq and $ne reach here: ordering is rejected for lists.
        return node.op === "$ne" ? `NOT ${contains}` : contains;
      }
      const x = metadataFieldExpression(node.field, column);
      switch (node.op) {
        case "$eq":
          return `${x} = ?`;
        case "$ne":
          // IS NOT is two-valued: a missing field (NULL) matches, as in MongoDB.
          return `${x} IS NOT ?`;
        default:
          return `${x} ${SQL_CMP[node.op]} ?`;
      }
    }
    case "in": {
      for (const v of node.values) params.push(sqlParam(v));
      const list = `(${node.values.map(() => "?").join(", ")})`;
      if (node.field.type === "string_list") {
        const containsAny = `EXISTS (SELECT 1 FROM json_each(${column}, ${jsonPath(node.field)}) WHERE value IN ${list})`;
        return node.negate ? `NOT ${containsAny}` : containsAny;
      }
      const x = metadataFieldExpression(node.field, column);
      // NOT IN on NULL is NULL; a missing field matches $nin.
      return node.negate ? `IFNULL(${x} NOT IN ${list}, 1)` : `${x} IN ${list}`;
    }
  }
}

// ---- JavaScript ---------------------------------------------------------------------

/** A field's value; absent, `undefined` and `null` all mean missing (json_extract gives NULL). */
function fieldValue(md: Readonly<Record<string, unknown>>, field: FieldSpec): unknown {
  const v = ownValue(md, field.name);
  return v === null ? undefined : v;
}

function sameType(field: FieldSpec, v: unknown): boolean {
  switch (field.type) {
    case "string":
      return typeof v === "string";
    case "int":
    case "float":
      return typeof v === "number";
    case "bool":
      return typeof v === "boolean";
    case "string_list":
      return Array.isArray(v);
  }
}

function compareScalar(a: Scalar, b: Scalar): number {
  if (typeof a === "string" && typeof b === "string") return compareCodePoints(a, b);
  return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
}

function evaluate(node: Node, md: Readonly<Record<string, unknown>>): boolean {
  switch (node.kind) {
    case "all":
      return true;
    case "and":
      return node.children.every((c) => evaluate(c, md));
    case "or":
      return node.children.some((c) => evaluate(c, md));
    case "not":
      return !evaluate(node.child, md);
    case "exists":
      return (fieldValue(md, node.field) !== undefined) === node.exists;
    case "cmp":
      return evaluateCmp(node, md);
    case "in":
      return evaluateIn(node, md);
  }
}

function evaluateCmp(node: Extract<Node, { kind: "cmp" }>, md: Readonly<Record<string, unknown>>): boolean {
  const v = fieldValue(md, node.field);
  const present = v !== undefined && sameType(node.field, v);
  if (node.field.type === "string_list") {
    const contains = present && (v as unknown[]).includes(node.value);
    return node.op === "$ne" ? !contains : contains;
  }
  switch (node.op) {
    case "$eq":
      return present && v === node.value;
    case "$ne":
      return !(present && v === node.value);
    case "$gt":
      return present && compareScalar(v as Scalar, node.value) > 0;
    case "$gte":
      return present && compareScalar(v as Scalar, node.value) >= 0;
    case "$lt":
      return present && compareScalar(v as Scalar, node.value) < 0;
    case "$lte":
      return present && compareScalar(v as Scalar, node.value) <= 0;
  }
}

function evaluateIn(node: Extract<Node, { kind: "in" }>, md: Readonly<Record<string, unknown>>): boolean {
  const v = fieldValue(md, node.field);
  let hit = false;
  if (v !== undefined && sameType(node.field, v)) {
    hit = node.field.type === "string_list" ? (v as unknown[]).some((item) => node.set.has(item as Scalar)) : node.set.has(v as Scalar);
  }
  return node.negate ? !hit : hit;
}

/**
 * Validates a metadata filter against a collection's schema and compiles it. `filter` is
 * the request's JSON object; `undefined` (no filter) and `{}` match every record. Throws
 * `InvalidArgumentError` naming the first problem with its path, e.g.
 * `filter.year.$gte: expected a number, got string`. See the package README for the
 * grammar and the semantics.
 */
export function compileFilter(spec: CollectionSpec, filter: unknown, options: CompileFilterOptions = {}): CompiledFilter {
  const column = checkColumn(options.column ?? "metadata");
  const st: ParseState = {
    spec,
    byName: new Map(spec.fields.map((f) => [f.name, f])),
    fieldsUsed: new Set(),
    clauses: 0,
    params: 0,
  };
  const root: Node = filter === undefined ? { kind: "all" } : parseFilter(st, filter, "filter", 1);
  const params: (string | number | bigint)[] = [];
  const sql = toSql(root, column, params);
  return Object.freeze({
    sql,
    params: Object.freeze(params),
    fields: Object.freeze([...st.fieldsUsed]),
    matches: (metadata: Readonly<Record<string, unknown>>): boolean => evaluate(root, metadata),
  });
}
