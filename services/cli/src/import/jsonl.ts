// JSON Lines: one object per line, {"id": "a", "vector": [0.1, ...], "metadata": {...}}.
// Other top-level keys are added to the metadata (keys inside "metadata" win), so flat
// exports work as they are. Blank lines are skipped.
import { stat } from "node:fs/promises";
import type { JsonObject } from "@vecraft/client";
import { InputError } from "../errors.js";
import { readLines } from "./readers.js";
import type { RecordSource, SourceOptions, SourceRecord } from "./source.js";

function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A vector from JSON: an array of finite numbers. */
export function vectorFromJson(v: unknown, what: string): number[] {
  if (!Array.isArray(v)) throw new InputError(`${what} must be an array of numbers`);
  for (let i = 0; i < v.length; i++) {
    if (typeof v[i] !== "number") throw new InputError(`${what}[${i}] is not a number: ${JSON.stringify(v[i])}`);
  }
  return v as number[];
}

export function idFromJson(v: unknown, what: string): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  throw new InputError(`${what} must be a string or a number, got ${JSON.stringify(v)}`);
}

export function parseJsonlRecord(text: string, line: number, index: number, opts: SourceOptions): Omit<SourceRecord, "end"> {
  const at = `line ${line}`;
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${at}: invalid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!isObject(obj)) throw new InputError(`${at}: expected a JSON object`);
  const rawId = obj[opts.idField];
  let id: string;
  if (rawId === undefined || rawId === null) {
    if (opts.idPrefix === undefined) throw new InputError(`${at}: no ${JSON.stringify(opts.idField)} (use --id-field, or --id-prefix to number the records)`);
    id = `${opts.idPrefix}${index}`;
  } else {
    id = idFromJson(rawId, `${at}: ${JSON.stringify(opts.idField)}`);
  }
  if (!(opts.vectorField in obj)) throw new InputError(`${at}: no ${JSON.stringify(opts.vectorField)} (use --vector-field)`);
  const vector = vectorFromJson(obj[opts.vectorField], `${at}: ${JSON.stringify(opts.vectorField)}`);
  const nested = obj["metadata"];
  if (nested !== undefined && nested !== null && !isObject(nested)) throw new InputError(`${at}: "metadata" must be a JSON object`);
  const metadata: JsonObject = {};
  for (const [k, v] of Object.entries(obj)) {
    if (k !== opts.idField && k !== opts.vectorField && k !== "metadata" && v !== undefined) metadata[k] = v;
  }
  if (isObject(nested)) Object.assign(metadata, nested);
  return { id, vector, loc: line, ...(Object.keys(metadata).length > 0 ? { metadata } : {}) };
}

export async function openJsonl(path: string, opts: SourceOptions, signal?: AbortSignal): Promise<RecordSource> {
  const { size } = await stat(path);
  return {
    format: "jsonl",
    unit: "line",
    totalBytes: size,
    totalRecords: undefined,
    async *[Symbol.asyncIterator]() {
      let index = 0;
      for await (const l of readLines(path, signal)) {
        if (l.text.trim() === "") continue;
        yield { ...parseJsonlRecord(l.text, l.line, index, opts), end: l.end };
        index++;
      }
    },
  };
}
