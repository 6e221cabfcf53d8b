// .fvecs (the TEXMEX / ann-benchmarks format): per vector, an int32 dimension then that
// many float32 values, little-endian. Row i becomes the record with id `prefix + i`.
import { stat } from "node:fs/promises";
import { InputError } from "../errors.js";
import { decodeRow } from "./npy.js";
import { BinaryReader } from "./readers.js";
import type { RecordSource, SourceOptions, SourceRecord } from "./source.js";

/** Larger than any dimension a collection accepts; a bigger one means this is not .fvecs. */
const MAX_DIM = 1 << 16;

export async function openFvecs(path: string, opts: SourceOptions, signal?: AbortSignal): Promise<RecordSource> {
  const { size } = await stat(path);
  const prefix = opts.idPrefix ?? "";
  let firstDim: number | undefined;
  return {
    format: "fvecs",
    unit: "row",
    totalBytes: size,
    get totalRecords(): number | undefined {
      return firstDim === undefined ? undefined : Math.floor(size / (4 + 4 * firstDim));
    },
    async *[Symbol.asyncIterator](): AsyncGenerator<SourceRecord, void, undefined> {
      const reader = new BinaryReader(path, signal);
      try {
        for (let row = 0; ; row++) {
          const head = await reader.read(4, `row ${row}`);
          if (head === undefined) return;
          const dim = head.readInt32LE(0);
          if (dim <= 0 || dim > MAX_DIM) throw new InputError(`row ${row}: dimension ${dim} is not plausible (not an .fvecs file?)`);
          firstDim ??= dim;
          if (dim !== firstDim) throw new InputError(`row ${row}: dimension ${dim}, but row 0 has ${firstDim}`);
          const body = await reader.read(4 * dim, `row ${row}`);
          if (body === undefined) throw new InputError(`row ${row}: the file ends after the dimension`);
          yield { id: `${prefix}${row}`, vector: decodeRow(body, "f4", dim), loc: row, end: reader.offset };
        }
      } finally {
        await reader.close();
      }
    },
  };
}
