import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  MAX_LOGICAL,
  MAX_TIMESTAMP,
  MAX_WALL_MS,
  ZERO,
  compare,
  decode,
  encode,
  formatTimestamp,
  fromDate,
  maxTimestamp,
  parseTimestamp,
  toDate,
} from "../src/index.js";

const wallArb = fc.integer({ min: 0, max: MAX_WALL_MS });
const logicalArb = fc.integer({ min: 0, max: MAX_LOGICAL });
const pairArb = fc.tuple(wallArb, logicalArb);
// Edge values are where packing bugs live (sign bits, the 2^53 boundary, the top of uint64).
const edgeWallArb = fc.constantFrom(0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 37, MAX_WALL_MS - 1, MAX_WALL_MS);
const anyPairArb = fc.oneof(pairArb, fc.tuple(edgeWallArb, fc.constantFrom(0, 1, MAX_LOGICAL - 1, MAX_LOGICAL)));

function comparePairs(a: readonly [number, number], b: readonly [number, number]): -1 | 0 | 1 {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  if (a[1] !== b[1]) return a[1] < b[1] ? -1 : 1;
  return 0;
}

describe("encode / decode", () => {
  it("packs wallMs * 2^16 + logical", () => {
    expect(encode(0, 0)).toBe(ZERO);
    expect(encode(1, 0)).toBe(65536n);
    expect(encode(1, 7)).toBe(65543n);
    expect(encode(1_714_564_800_123, 7)).toBe(1_714_564_800_123n * 65536n + 7n);
    expect(encode(MAX_WALL_MS, MAX_LOGICAL)).toBe(MAX_TIMESTAMP);
    expect(MAX_TIMESTAMP).toBe(2n ** 64n - 1n);
  });

  it("decode(encode(x)) == x", () => {
    fc.assert(
      fc.property(anyPairArb, ([wallMs, logical]) => {
        expect(decode(encode(wallMs, logical))).toEqual({ wallMs, logical });
      }),
    );
  });

  it("encode(decode(ts)) == ts over the whole uint64 range", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MAX_TIMESTAMP }), (ts) => {
        const { wallMs, logical } = decode(ts);
        expect(encode(wallMs, logical)).toBe(ts);
      }),
    );
  });

  it("preserves order: compare(a, b) == compare(encode(a), encode(b))", () => {
    fc.assert(
      fc.property(anyPairArb, anyPairArb, (a, b) => {
        expect(compare(encode(...a), encode(...b))).toBe(comparePairs(a, b));
      }),
    );
  });

  it("compare is a total order consistent with bigint order, and maxTimestamp picks the larger", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MAX_TIMESTAMP }), fc.bigInt({ min: 0n, max: MAX_TIMESTAMP }), (a, b) => {
        expect(compare(a, b) + compare(b, a)).toBe(0);
        expect(compare(a, a)).toBe(0);
        expect(maxTimestamp(a, b)).toBe(a > b ? a : b);
      }),
    );
  });

  it.each([
    ["negative wall", -1, 0],
    ["fractional wall", 1.5, 0],
    ["NaN wall", Number.NaN, 0],
    ["infinite wall", Number.POSITIVE_INFINITY, 0],
    ["wall at 2^48", 2 ** 48, 0],
    ["negative logical", 0, -1],
    ["fractional logical", 0, 0.5],
    ["logical above MAX_LOGICAL", 0, MAX_LOGICAL + 1],
  ])("encode rejects %s with a RangeError", (_name, wallMs, logical) => {
    expect(() => encode(wallMs, logical)).toThrow(RangeError);
  });

  it("decode rejects values outside uint64 and non-bigints", () => {
    expect(() => decode(-1n)).toThrow(RangeError);
    expect(() => decode(MAX_TIMESTAMP + 1n)).toThrow(RangeError);
    // A Number that slipped through JSON must not be decoded as if it were exact.
    expect(() => decode(65536 as unknown as bigint)).toThrow(TypeError);
  });
});

describe("dates and text", () => {
  const wallMs = Date.UTC(2024, 4, 1, 12, 0, 0, 123);

  it("formats as ISO time plus logical", () => {
    expect(formatTimestamp(encode(wallMs, 7))).toBe("2024-05-01T12:00:00.123Z,7");
    expect(formatTimestamp(ZERO)).toBe("1970-01-01T00:00:00.000Z,0");
  });

  it("converts to and from Date", () => {
    expect(fromDate(new Date(wallMs))).toBe(encode(wallMs, 0));
    expect(fromDate(new Date(wallMs), 3)).toBe(encode(wallMs, 3));
    expect(toDate(encode(wallMs, 9)).getTime()).toBe(wallMs);
    expect(() => fromDate(new Date(Number.NaN))).toThrow(RangeError);
    expect(() => fromDate(new Date(-1))).toThrow(RangeError);
  });

  it("parseTimestamp(formatTimestamp(ts)) == ts, also from the decimal packed form", () => {
    fc.assert(
      fc.property(anyPairArb, ([w, l]) => {
        const ts = encode(w, l);
        expect(parseTimestamp(formatTimestamp(ts))).toBe(ts);
        expect(parseTimestamp(ts.toString())).toBe(ts);
      }),
    );
  });

  it("parses the ISO form without a logical part as logical 0", () => {
    expect(parseTimestamp("2024-05-01T12:00:00.123Z")).toBe(encode(wallMs, 0));
    expect(parseTimestamp(" 2024-05-01T12:00:00Z,12 ")).toBe(encode(wallMs - 123, 12));
  });

  it.each([
    "",
    "yesterday",
    "2024-05-01",
    "2024-05-01T12:00:00+02:00",
    "2024-02-30T00:00:00Z",
    "2024-05-01T12:00:00Z,65536",
    "2024-05-01T12:00:00Z,-1",
    "1969-12-31T23:59:59.999Z",
    "18446744073709551616",
  ])("parseTimestamp rejects %j", (text) => {
    expect(() => parseTimestamp(text)).toThrow(RangeError);
  });
});
