// Conversions between the public messages (repeated float, google.protobuf.Struct) and
// the internal ones (little-endian float32 bytes, metadata as JSON text).
import type { JsonObject } from "@bufbuild/protobuf";
import { InternalError } from "@vecraft/common";

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** A vector as little-endian float32 bytes (a copy). */
export function vectorToBytes(v: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) {
    return new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
  }
  const out = new Uint8Array(v.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < v.length; i++) view.setFloat32(i * 4, v[i] ?? 0, true);
  return out;
}

/** Little-endian float32 bytes as numbers; empty bytes are an empty vector. */
export function bytesToVector(bytes: Uint8Array, what = "vector"): number[] {
  if (bytes.byteLength % 4 !== 0) {
    throw new InternalError(`${what}: ${bytes.byteLength} bytes is not a whole number of float32 values`);
  }
  const n = bytes.byteLength / 4;
  const out = new Array<number>(n);
  if (LITTLE_ENDIAN) {
    // Float32Array needs 4-byte alignment; a subarray of a protobuf buffer may not have it.
    const aligned = bytes.byteOffset % 4 === 0 ? bytes : Uint8Array.from(bytes); // Buffer#slice would not copy
    const f = new Float32Array(aligned.buffer, aligned.byteOffset, n);
    for (let i = 0; i < n; i++) out[i] = f[i] ?? 0;
    return out;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** Stored metadata JSON text as a Struct value; "" (none) is undefined. */
export function metadataFromJson(text: string, what = "metadata"): JsonObject | undefined {
  if (text === "") return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new InternalError(`${what}: stored metadata is not valid JSON`, { cause: e });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new InternalError(`${what}: stored metadata is not a JSON object`);
  }
  return v as JsonObject;
}

/**
 * JSON text with object keys sorted at every level, so that two equal filters give the
 * same text whatever order a client's map encoding put the keys in.
 */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => canonicalJson(x)).join(",")}]`;
  if (typeof v === "object" && v !== null) {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}
