// Small helpers shared by the schema, record and filter modules. Not exported from the
// package: callers get them through the functions that use them.
import { InvalidArgumentError } from "@vecraft/common";

/**
 * The one way this package rejects input: `InvalidArgumentError("<path>: <problem>")`,
 * with the path also in `details.field` (and the batch index in `details.index` when there
 * is one) so that the gateway can send it as machine-readable metadata.
 */
export function invalid(path: string, problem: string, index?: number): InvalidArgumentError {
  return new InvalidArgumentError(`${path}: ${problem}`, {
    details: index === undefined ? { field: path } : { field: path, index },
  });
}

/**
 * Names the JSON type of a value the way error messages talk about it: the schema's own
 * words (`string`, `int`, `float`, `bool`) for scalars, `list`/`object`/`null` for the rest,
 * and `typeof` for things JSON cannot hold.
 */
export function describeType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "list";
  switch (typeof v) {
    case "string":
      return "string";
    case "boolean":
      return "bool";
    case "number":
      if (Number.isNaN(v)) return "NaN";
      if (!Number.isFinite(v)) return v > 0 ? "Infinity" : "-Infinity";
      return Number.isInteger(v) ? "int" : "float";
    case "object":
      return ArrayBuffer.isView(v) ? "typed array" : "object";
    default:
      return typeof v;
  }
}

/** An object literal or `JSON.parse` result (prototype `Object.prototype` or `null`). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

// In a `u` regex a lone surrogate is a code point of category Cs; a valid pair is one
// astral code point and does not match.
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Whether a string is well-formed UTF-16, i.e. has a UTF-8 encoding. Lone surrogates
 * would be replaced by U+FFFD on the way to protobuf, SQLite or the hash, silently turning
 * two different strings into one.
 */
export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

/** The UTF-8 length of a well-formed string, without encoding it. */
export function utf8ByteLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      // A high surrogate starts a 4-byte sequence with the low surrogate after it.
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * Compares strings by Unicode code point, which is also the order of their UTF-8 bytes:
 * SQLite's BINARY collation. JavaScript's `<` compares UTF-16 code units, which differs
 * for astral characters versus U+E000..U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      return fixup(x) - fixup(y);
    }
  }
  return a.length - b.length;
}

// Surrogates (D800..DFFF) encode code points above FFFF, so they must sort after E000..FFFF.
function fixup(c: number): number {
  if (c >= 0xd800 && c <= 0xdfff) return c + 0x2000;
  if (c >= 0xe000) return c - 0x800;
  return c;
}

/** A key in an error path: `.name` for identifiers, `["odd key"]` for anything else. */
export function pathKey(key: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

/** Own property lookup: a field named `constructor` or `__proto__` must not see the prototype. */
export function ownValue(obj: Readonly<Record<string, unknown>>, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}
