// XXH64 (xxHash, 64-bit) and the shard function built on it.
//
// The shard of a record is part of the data's layout on disk and in the journal: it must
// never change for an id. So the hash is spelled out here, tested against the reference
// vectors of Cyan4973/xxHash, and documented in the README; no dependency update can move
// records between shards.
import { invalid, isWellFormed } from "./util.js";

const MASK64 = (1n << 64n) - 1n;
const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;

function rotl(x: bigint, r: bigint): bigint {
  return ((x << r) | (x >> (64n - r))) & MASK64;
}

function round(acc: bigint, lane: bigint): bigint {
  acc = (acc + lane * P2) & MASK64;
  acc = rotl(acc, 31n);
  return (acc * P1) & MASK64;
}

function mergeRound(acc: bigint, v: bigint): bigint {
  acc ^= round(0n, v);
  return (acc * P1 + P4) & MASK64;
}

/**
 * XXH64 of `data` with a 64-bit `seed` (default 0), as an unsigned 64-bit bigint. Matches
 * the reference implementation (`XXH64()` in xxhash.h) bit for bit.
 */
export function xxhash64(data: Uint8Array, seed = 0n): bigint {
  if (seed < 0n || seed > MASK64) {
    throw new RangeError(`xxhash64: seed ${seed} is not an unsigned 64-bit integer`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const len = data.byteLength;
  let p = 0;
  let h: bigint;
  if (len >= 32) {
    let v1 = (seed + P1 + P2) & MASK64;
    let v2 = (seed + P2) & MASK64;
    let v3 = seed;
    let v4 = (seed - P1) & MASK64;
    const limit = len - 32;
    while (p <= limit) {
      v1 = round(v1, view.getBigUint64(p, true));
      v2 = round(v2, view.getBigUint64(p + 8, true));
      v3 = round(v3, view.getBigUint64(p + 16, true));
      v4 = round(v4, view.getBigUint64(p + 24, true));
      p += 32;
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & MASK64;
    h = mergeRound(h, v1);
    h = mergeRound(h, v2);
    h = mergeRound(h, v3);
    h = mergeRound(h, v4);
  } else {
    h = (seed + P5) & MASK64;
  }
  h = (h + BigInt(len)) & MASK64;
  while (p + 8 <= len) {
    h ^= round(0n, view.getBigUint64(p, true));
    h = (rotl(h, 27n) * P1 + P4) & MASK64;
    p += 8;
  }
  if (p + 4 <= len) {
    h ^= (BigInt(view.getUint32(p, true)) * P1) & MASK64;
    h = (rotl(h, 23n) * P2 + P3) & MASK64;
    p += 4;
  }
  while (p < len) {
    h ^= (BigInt(view.getUint8(p)) * P5) & MASK64;
    h = (rotl(h, 11n) * P1) & MASK64;
    p += 1;
  }
  // Avalanche.
  h ^= h >> 33n;
  h = (h * P2) & MASK64;
  h ^= h >> 29n;
  h = (h * P3) & MASK64;
  h ^= h >> 32n;
  return h;
}

/** The largest shard count a collection may have (`CollectionSpec.shards`). */
export const MAX_SHARDS = 256;

const encoder = new TextEncoder();

/**
 * The shard of a record: `xxhash64(utf8(id), seed 0) mod shards`, with the 64-bit hash
 * taken as an unsigned integer. Stable forever for a given id and shard count.
 *
 * `id` must be a valid record id (see `validateRecordId`); `shards` must be an integer in
 * 1..256. Both are checked, since a wrong shard silently misplaces data.
 */
export function shardOf(id: string, shards: number): number {
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS) {
    throw new RangeError(`shardOf: shards must be an integer in 1..${MAX_SHARDS}, got ${shards}`);
  }
  if (typeof id !== "string") {
    throw invalid("id", "expected a string");
  }
  if (!isWellFormed(id)) {
    // TextEncoder would map every lone surrogate to U+FFFD: distinct ids, one hash.
    throw invalid("id", "not well-formed Unicode (lone surrogate)");
  }
  return shardOfBytes(encoder.encode(id), shards);
}

/** `shardOf` for an id already encoded as UTF-8 (the batch validators encode once). */
export function shardOfBytes(idUtf8: Uint8Array, shards: number): number {
  return shards === 1 ? 0 : Number(xxhash64(idUtf8) % BigInt(shards));
}
