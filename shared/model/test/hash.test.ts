import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_SHARDS, shardOf, validateCollectionSpec, validateDeleteBatch, xxhash64 } from "../src/index.js";

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const PRIME32 = 2654435761n;
const PRIME64 = 11400714785074694797n;

/** The xxHash sanity buffer (cli/xsum_sanity_check.c, XSUM_fillTestBuffer). */
function sanityBuffer(len: number): Uint8Array {
  const buf = new Uint8Array(len);
  let gen = PRIME32;
  for (let i = 0; i < len; i++) {
    buf[i] = Number(gen >> 56n);
    gen = (gen * PRIME64) & 0xffff_ffff_ffff_ffffn;
  }
  return buf;
}

describe("xxhash64", () => {
  it("matches the reference sanity vectors of Cyan4973/xxHash (XSUM_XXH64_testdata)", () => {
    const buf = sanityBuffer(222);
    const vectors: [number, bigint, bigint][] = [
      [0, 0n, 0xef46db3751d8e999n],
      [0, PRIME32, 0xac75fda2929b17efn],
      [1, 0n, 0xe934a84adb052768n],
      [1, PRIME32, 0x5014607643a9b4c3n],
      [4, 0n, 0x9136a0dca57457een],
      [14, 0n, 0x8282dcc4994e35c8n],
      [14, PRIME32, 0xc3bd6bf63deb6df0n],
      [222, 0n, 0xb641ae8cb691c174n],
      [222, PRIME32, 0x20cb8ab7ae10c14an],
    ];
    for (const [len, seed, want] of vectors) {
      expect(xxhash64(buf.subarray(0, len), seed), `len ${len} seed ${seed}`).toBe(want);
    }
  });

  it("matches the well-known string vectors (seed 0)", () => {
    // "" (empty), 1 and 3 bytes (byte tail), 14 (8+4+2), 26 (three 8-byte lanes + 2), 39 (one 32-byte stripe).
    expect(xxhash64(utf8(""))).toBe(0xef46db3751d8e999n);
    expect(xxhash64(utf8("a"))).toBe(0xd24ec4f1a98c6e5bn);
    expect(xxhash64(utf8("abc"))).toBe(0x44bc2cf5ad770999n);
    expect(xxhash64(utf8("message digest"))).toBe(0x066ed728fceeb3ben);
    expect(xxhash64(utf8("abcdefghijklmnopqrstuvwxyz"))).toBe(0xcfe1f278fa89835cn);
    expect(xxhash64(utf8("Nobody inspects the spammish repetition"))).toBe(0xfbcea83c8a378bf1n);
  });

  it("depends only on the bytes, not on the view's offset in its buffer", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat({ max: 7 }), (bytes, pad) => {
        const big = new Uint8Array(bytes.length + pad);
        big.set(bytes, pad);
        expect(xxhash64(big.subarray(pad))).toBe(xxhash64(bytes));
      }),
    );
  });

  it("rejects a seed outside uint64", () => {
    expect(() => xxhash64(new Uint8Array(0), -1n)).toThrow(RangeError);
    expect(() => xxhash64(new Uint8Array(0), 1n << 64n)).toThrow(RangeError);
  });
});

describe("shardOf", () => {
  it("is xxhash64(utf8(id)) mod shards: golden values that must never change", () => {
    // Each row: id, xxhash64 of its UTF-8 bytes, shard for 1, 2, 3, 8, 16, 256 shards.
    const golden: [string, bigint, number[]][] = [
      ["abc", 0x44bc2cf5ad770999n, [0, 1, 0, 1, 9, 153]],
      ["doc-1", 0x037fe13bd80c56aan, [0, 0, 1, 2, 10, 170]],
      ["doc-2", 0x22cf35c5b416b33an, [0, 0, 0, 2, 10, 58]],
      ["550e8400-e29b-41d4-a716-446655440000", 0x567c8cb3ce99ae3fn, [0, 1, 0, 7, 15, 63]],
      ["é", 0x17d757dfb8b46f78n, [0, 0, 0, 0, 8, 120]],
      ["😀", 0x9025b8abaae87b80n, [0, 0, 1, 0, 0, 128]],
    ];
    for (const [id, hash, shards] of golden) {
      expect(xxhash64(utf8(id))).toBe(hash);
      expect([1, 2, 3, 8, 16, 256].map((n) => shardOf(id, n))).toEqual(shards);
    }
  });

  it("agrees with the hash for any id and shard count, and with the batch validators", () => {
    const spec = validateCollectionSpec({ name: "c", dimension: 1, metric: "l2", shards: 7 });
    fc.assert(
      fc.property(fc.string({ unit: "binary", minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: MAX_SHARDS }), (id, n) => {
        const s = shardOf(id, n);
        expect(s).toBe(Number(xxhash64(utf8(id)) % BigInt(n)));
        expect(s).toBeGreaterThanOrEqual(0);
        expect(s).toBeLessThan(n);
        expect(validateDeleteBatch(spec, [id])[0]!.shard).toBe(shardOf(id, 7));
      }),
    );
  });

  it("spreads sequential ids evenly (chi-square sanity check)", () => {
    for (const shards of [3, 16, 64]) {
      const n = 400 * shards;
      const counts = new Array<number>(shards).fill(0);
      for (let i = 0; i < n; i++) counts[shardOf(`user-${i}`, shards)]! += 1;
      const expected = n / shards;
      const chi2 = counts.reduce((acc, c) => acc + (c - expected) ** 2 / expected, 0);
      // Deterministic input, so no flakiness; the bound is far above the 99.9th percentile
      // of chi-square with shards-1 degrees of freedom (e.g. 37.7 for 15, 103 for 63).
      expect(chi2, `chi2 ${chi2} over ${shards} shards`).toBeLessThan(2 * (shards - 1) + 30);
      expect(Math.min(...counts)).toBeGreaterThan(expected * 0.75);
    }
  });

  it("rejects bad shard counts and ids that have no UTF-8 encoding", () => {
    expect(() => shardOf("a", 0)).toThrow(RangeError);
    expect(() => shardOf("a", 257)).toThrow(RangeError);
    expect(() => shardOf("a", 1.5)).toThrow(RangeError);
    expect(() => shardOf("a\ud800", 4)).toThrow("id: not well-formed Unicode (lone surrogate)");
  });
});
