/**
 * A Hybrid Logical Clock timestamp packed as `wallMs * 2^16 + logical`.
 *
 * Packing the pair into one unsigned 64-bit integer makes the numeric order of the packed
 * value equal to the lexicographic order of `(wallMs, logical)`, so storage and the wire
 * can compare timestamps without decoding them. It is a bigint because the packed value
 * exceeds 2^53; never convert it to a Number to compare.
 */
export type Timestamp = bigint;

/** Width of the logical counter in bits. */
export const LOGICAL_BITS = 16;
/** Largest logical counter value that fits the packing. */
export const MAX_LOGICAL = 0xffff;
/** Largest wall time (ms since the Unix epoch) that keeps the packed value within 64 bits. */
export const MAX_WALL_MS = 2 ** 48 - 1;
/** The smallest timestamp; every timestamp an HLC issues is greater. */
export const ZERO: Timestamp = 0n;
/** The largest valid timestamp (`MAX_WALL_MS`, `MAX_LOGICAL`). */
export const MAX_TIMESTAMP: Timestamp = (1n << 64n) - 1n;

const LOGICAL_SHIFT = BigInt(LOGICAL_BITS);
const LOGICAL_MASK = BigInt(MAX_LOGICAL);

/** The two halves of a timestamp, both plain Numbers (safe integers). */
export interface DecodedTimestamp {
  readonly wallMs: number;
  readonly logical: number;
}

function checkWallMs(wallMs: number, what: string): void {
  if (!Number.isSafeInteger(wallMs) || wallMs < 0 || wallMs > MAX_WALL_MS) {
    throw new RangeError(`${what} must be an integer in [0, 2^48), got ${String(wallMs)}`);
  }
}

function checkLogical(logical: number): void {
  if (!Number.isSafeInteger(logical) || logical < 0 || logical > MAX_LOGICAL) {
    throw new RangeError(`logical must be an integer in [0, ${MAX_LOGICAL}], got ${String(logical)}`);
  }
}

/** Packs `(wallMs, logical)`. Throws a RangeError unless both are in range. */
export function encode(wallMs: number, logical: number): Timestamp {
  checkWallMs(wallMs, "wallMs");
  checkLogical(logical);
  return (BigInt(wallMs) << LOGICAL_SHIFT) | BigInt(logical);
}

/**
 * Throws unless `ts` is a bigint in the uint64 range. Values come from the wire and from
 * storage, where a bad one must fail loudly rather than be silently wrapped.
 */
export function assertTimestamp(ts: Timestamp, what = "timestamp"): void {
  if (typeof ts !== "bigint") {
    throw new TypeError(`${what} must be a bigint, got ${typeof ts}`);
  }
  if (ts < 0n || ts > MAX_TIMESTAMP) {
    throw new RangeError(`${what} must be in [0, 2^64), got ${ts.toString()}`);
  }
}

/** Unpacks a timestamp. Throws unless `ts` is a bigint in the uint64 range. */
export function decode(ts: Timestamp): DecodedTimestamp {
  assertTimestamp(ts);
  return { wallMs: Number(ts >> LOGICAL_SHIFT), logical: Number(ts & LOGICAL_MASK) };
}

/** Orders two timestamps: -1 if `a < b`, 0 if equal, 1 if `a > b`. */
export function compare(a: Timestamp, b: Timestamp): -1 | 0 | 1 {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The later of two timestamps. */
export function maxTimestamp(a: Timestamp, b: Timestamp): Timestamp {
  return a >= b ? a : b;
}

/** A timestamp at `date` with the given logical counter (default 0). */
export function fromDate(date: Date, logical = 0): Timestamp {
  return encode(date.getTime(), logical);
}

/** The wall-clock part of `ts` as a Date; the logical counter is dropped. */
export function toDate(ts: Timestamp): Date {
  return new Date(decode(ts).wallMs);
}

/**
 * Human-readable form for logs and the CLI: the wall time in ISO 8601 (UTC, ms) and the
 * logical counter after a comma, e.g. `2024-05-01T12:00:00.123Z,7`. The comma follows
 * CockroachDB's `wall,logical` notation and cannot be mistaken for a zone offset.
 */
export function formatTimestamp(ts: Timestamp): string {
  const { wallMs, logical } = decode(ts);
  return `${new Date(wallMs).toISOString()},${logical}`;
}

// Only the shape toISOString produces (with the extended year form past 9999), so that a
// typo in a CLI flag is an error instead of whatever Date.parse guesses.
const ISO_UTC = /^(?:\d{4}|\+\d{6})-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z$/;
const FORMATTED = /^([^,]+)(?:,(\d{1,5}))?$/;
const DECIMAL = /^\d{1,20}$/;

/**
 * Parses what `formatTimestamp` prints (the `,logical` part is optional and defaults to 0)
 * or the packed value as a decimal integer. Throws a RangeError on anything else.
 */
export function parseTimestamp(text: string): Timestamp {
  const trimmed = text.trim();
  if (DECIMAL.test(trimmed)) {
    const ts = BigInt(trimmed);
    assertTimestamp(ts);
    return ts;
  }
  const match = FORMATTED.exec(trimmed);
  const iso = match?.[1];
  if (match === null || iso === undefined || !ISO_UTC.test(iso)) {
    throw new RangeError(`not a timestamp: ${JSON.stringify(text)} (expected e.g. 2024-05-01T12:00:00.123Z,7)`);
  }
  const wallMs = Date.parse(iso);
  // Date.parse rolls impossible days over (Feb 30 becomes Mar 1); printing it back catches that.
  const seconds = iso.slice(0, iso.indexOf("T") + 9);
  if (Number.isNaN(wallMs) || !new Date(wallMs).toISOString().startsWith(seconds)) {
    throw new RangeError(`not a valid date: ${JSON.stringify(iso)}`);
  }
  return encode(wallMs, Number(match[2] ?? "0"));
}
