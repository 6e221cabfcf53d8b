// What every import format yields: records with where they came from, so that a batch the
// server rejects can be traced back to a line or row of the file.
import type { JsonObject } from "@vecraft/client";

export type ImportFormat = "jsonl" | "csv" | "npy" | "fvecs";

export const IMPORT_FORMATS: readonly ImportFormat[] = ["jsonl", "csv", "npy", "fvecs"];

export interface SourceRecord {
  readonly id: string;
  readonly vector: number[] | Float32Array;
  readonly metadata?: JsonObject;
  /** The 1-based line (text formats) or 0-based row (binary formats) it came from. */
  readonly loc: number;
  /** Bytes of the file consumed through this record: progress. */
  readonly end: number;
}

export interface RecordSource extends AsyncIterable<SourceRecord> {
  readonly format: ImportFormat;
  /** How `loc` reads: "line 17" or "row 16". */
  readonly unit: "line" | "row";
  readonly totalBytes: number;
  /** Known up front for .npy, after the first vector for .fvecs; unknown for text. */
  readonly totalRecords: number | undefined;
}

/** How the formats name fields and make ids. */
export interface SourceOptions {
  /** JSONL key / CSV column of the id. Default "id". */
  idField: string;
  /** JSONL key / CSV column of the vector. Default "vector". */
  vectorField: string;
  /**
   * When set, records without an id get `prefix + index` (0-based record index). For
   * .npy and .fvecs, which have no ids, it defaults to "" (ids "0", "1", ...).
   */
  idPrefix: string | undefined;
}

/** "line 17" / "row 16". */
export function where(source: Pick<RecordSource, "unit">, loc: number): string {
  return `${source.unit} ${loc}`;
}

export function formatFromPath(path: string): ImportFormat | undefined {
  const lower = path.toLowerCase();
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson") || lower.endsWith(".json")) return "jsonl";
  if (lower.endsWith(".csv")) return "csv";
  if (lower.endsWith(".npy")) return "npy";
  if (lower.endsWith(".fvecs")) return "fvecs";
  return undefined;
}
