// NumPy .npy files (format versions 1, 2 and 3): a 2-D float32 or float64 array,
// little-endian, C order. Row i becomes the record with id `prefix + i`.
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
import { stat } from "node:fs/promises";
import { InputError } from "../errors.js";
import { BinaryReader } from "./readers.js";
import type { RecordSource, SourceOptions } from "./source.js";

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // "\x93NUMPY"

export interface NpyHeader {
  readonly dtype: "f4" | "f8";
  readonly rows: number;
  readonly dim: number;
  /** Where the array data starts. */
  readonly dataOffset: number;
}

/**
 * Parses the header dictionary, a Python literal such as
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 128), }`.
 */
export function parseNpyDict(text: string, dataOffset: number): NpyHeader {
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(text)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new InputError(`not a valid .npy header: ${JSON.stringify(text.trim())}`);
  }
  if (descr.startsWith(">")) {
    throw new InputError(`big-endian .npy data (${descr}) is not supported; save it with arr.astype('<f4')`);
  }
  const type = descr.replace(/^[<=|]/, "");
  if (type !== "f4" && type !== "f8") {
    throw new InputError(`only float32 and float64 .npy arrays are supported, got dtype ${JSON.stringify(descr)}`);
  }
  if (fortran === "True") {
    throw new InputError(".npy arrays in Fortran order are not supported; save it with np.ascontiguousarray(arr)");
  }
  const shape = shapeText
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => Number(s.replace(/L$/, "")));
  if (shape.length !== 2 || !shape.every((n) => Number.isSafeInteger(n) && n >= 0)) {
    throw new InputError(`expected a 2-D .npy array (rows x dimension), got shape (${shapeText.trim()})`);
  }
  return { dtype: type, rows: shape[0]!, dim: shape[1]!, dataOffset };
}

export async function readNpyHeader(reader: BinaryReader): Promise<NpyHeader> {
  const pre = await reader.read(8, "the .npy header");
  if (pre === undefined || !pre.subarray(0, 6).equals(MAGIC)) throw new InputError("not a .npy file (no \\x93NUMPY magic)");
  const major = pre[6]!;
  if (major !== 1 && major !== 2 && major !== 3) throw new InputError(`unsupported .npy format version ${major}.${pre[7]!}`);
  const lenBytes = major === 1 ? 2 : 4;
  const lenBuf = await reader.read(lenBytes, "the .npy header");
  if (lenBuf === undefined) throw new InputError("the .npy header is truncated");
  const headerLen = major === 1 ? lenBuf.readUInt16LE(0) : lenBuf.readUInt32LE(0);
  const dict = await reader.read(headerLen, "the .npy header");
  if (dict === undefined) throw new InputError("the .npy header is truncated");
  return parseNpyDict(dict.toString(major === 3 ? "utf8" : "latin1"), 8 + lenBytes + headerLen);
}

/** Little-endian floats to a vector, whatever the platform's byte order. */
export function decodeRow(buf: Buffer, dtype: "f4" | "f8", dim: number): Float32Array | number[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (dtype === "f4") {
    const out = new Float32Array(dim);
    for (let i = 0; i < dim; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }
  const out = new Array<number>(dim);
  for (let i = 0; i < dim; i++) out[i] = view.getFloat64(i * 8, true);
  return out;
}

export async function openNpy(path: string, opts: SourceOptions, signal?: AbortSignal): Promise<RecordSource> {
  const { size } = await stat(path);
  const probe = new BinaryReader(path, signal);
  let header: NpyHeader;
  try {
    header = await readNpyHeader(probe);
  } finally {
    await probe.close();
  }
  const itemBytes = header.dtype === "f4" ? 4 : 8;
  const rowBytes = header.dim * itemBytes;
  const expected = header.dataOffset + header.rows * rowBytes;
  if (size < expected) {
    throw new InputError(
      `the .npy header says ${header.rows} x ${header.dim} ${header.dtype === "f4" ? "float32" : "float64"} (${expected} bytes) but the file has ${size} bytes (truncated?)`,
    );
  }
  if (header.dim === 0) throw new InputError("the .npy array has dimension 0");
  const prefix = opts.idPrefix ?? "";
  return {
    format: "npy",
    unit: "row",
    totalBytes: size,
    totalRecords: header.rows,
    async *[Symbol.asyncIterator]() {
      const reader = new BinaryReader(path, signal);
      try {
        await readNpyHeader(reader);
        for (let row = 0; row < header.rows; row++) {
          const buf = await reader.read(rowBytes, `row ${row}`);
          if (buf === undefined) throw new InputError(`row ${row}: the file ends before the ${header.rows} rows its header announces`);
          yield { id: `${prefix}${row}`, vector: decodeRow(buf, header.dtype, header.dim), loc: row, end: reader.offset };
        }
      } finally {
        await reader.close();
      }
    },
  };
}
