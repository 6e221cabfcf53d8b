import { access } from "node:fs/promises";
import { InputError } from "../errors.js";
import { openCsv } from "./csv.js";
import { openFvecs } from "./fvecs.js";
import { openJsonl } from "./jsonl.js";
import { openNpy } from "./npy.js";
import type { ImportFormat, RecordSource, SourceOptions } from "./source.js";

/** Opens an import file as a stream of records; reads only the header (if any) now. */
export async function openSource(path: string, format: ImportFormat, opts: SourceOptions, signal?: AbortSignal): Promise<RecordSource> {
  try {
    await access(path);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    throw new InputError(`cannot read ${path}: ${code === "ENOENT" ? "no such file" : String(code ?? e)}`);
  }
  switch (format) {
    case "jsonl":
      return openJsonl(path, opts, signal);
    case "csv":
      return openCsv(path, opts, signal);
    case "npy":
      return openNpy(path, opts, signal);
    case "fvecs":
      return openFvecs(path, opts, signal);
  }
}
