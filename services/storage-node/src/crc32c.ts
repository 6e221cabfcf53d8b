// CRC32C (Castagnoli), incremental, slice-by-8 in plain JS: snapshot files are checked
// end to end. node:zlib's crc32 is the IEEE polynomial, not this one.
const POLY = 0x82f63b78;
const T = new Int32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n] as number;
  for (let t = 1; t < 8; t++) {
    c = (T[c & 0xff] as number) ^ (c >>> 8);
    T[t * 256 + n] = c;
  }
}

/** Extends `crc` (0 for a fresh checksum) with `data`; returns the unsigned CRC32C. */
export function crc32c(data: Uint8Array, crc = 0): number {
  let c = ~crc;
  let i = 0;
  const n = data.length;
  for (; i + 8 <= n; i += 8) {
    const a = c ^ ((data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24));
    c =
      (T[7 * 256 + (a & 0xff)] as number) ^
      (T[6 * 256 + ((a >>> 8) & 0xff)] as number) ^
      (T[5 * 256 + ((a >>> 16) & 0xff)] as number) ^
      (T[4 * 256 + (a >>> 24)] as number) ^
      (T[3 * 256 + (data[i + 4] as number)] as number) ^
      (T[2 * 256 + (data[i + 5] as number)] as number) ^
      (T[256 + (data[i + 6] as number)] as number) ^
      (T[data[i + 7] as number] as number);
  }
  for (; i < n; i++) c = (T[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}
