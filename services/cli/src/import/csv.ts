// CSV with a header row (RFC 4180: quoted fields, "" for a quote, line breaks inside
// quotes). The vector is either one column holding a JSON array ("vector" by default) or
// the columns v0, v1, ... vN. Every other column is metadata: an empty cell is left out,
// a number is parsed as a number, anything else stays a string.
import { stat } from "node:fs/promises";
import type { JsonObject } from "@vecraft/client";
import { InputError } from "../errors.js";
import { vectorFromJson } from "./jsonl.js";
import { readLines } from "./readers.js";
import type { Line } from "./readers.js";
import type { RecordSource, SourceOptions, SourceRecord } from "./source.js";

/**
 * Splits one CSV record. Returns undefined when the text ends inside a quoted field: the
 * record continues on the next line.
 */
export function splitCsvRecord(text: string, delimiter = ","): string[] | undefined {
  const fields: string[] = [];
  let field = "";
  let i = 0;
  let quoted = false;
  let atFieldStart = true;
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      field += c;
      i++;
      continue;
    }
    if (c === '"' && atFieldStart) {
      quoted = true;
      atFieldStart = false;
      i++;
      continue;
    }
    if (c === delimiter) {
      fields.push(field);
      field = "";
      atFieldStart = true;
      i++;
      continue;
    }
    // A quote inside an unquoted field, or text after a closing quote, is kept as is.
    field += c;
    atFieldStart = false;
    i++;
  }
  if (quoted) return undefined;
  fields.push(field);
  return fields;
}

/** Whole CSV records from lines, joining the lines of quoted fields that span them. */
export async function* csvRecords(lines: AsyncIterable<Line>): AsyncGenerator<{ fields: string[]; line: number; end: number }, void, undefined> {
  let pending: { text: string; line: number } | undefined;
  let last: Line | undefined;
  for await (const l of lines) {
    last = l;
    const text = pending === undefined ? l.text : `${pending.text}\n${l.text}`;
    const line = pending?.line ?? l.line;
    const fields = splitCsvRecord(text);
    if (fields === undefined) {
      pending = { text, line };
      continue;
    }
    pending = undefined;
    if (text.trim() === "") continue;
    yield { fields, line, end: l.end };
  }
  if (pending !== undefined) {
    throw new InputError(`line ${pending.line}: a quoted field is not closed by the end of the file (line ${last?.line ?? pending.line})`);
  }
}

const NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;
/** Any decimal float, for vector components: "1", "-0.5", ".5", "1e-3". */
const FLOAT = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

/** A metadata cell: a number when it reads as one (but not "007", which is an identifier). */
export function csvValue(cell: string): string | number {
  const t = cell.trim();
  if (NUMBER.test(t)) {
    const n = Number(t);
    if (Number.isFinite(n)) return n;
  }
  return cell;
}

interface Layout {
  id: number | undefined;
  /** The JSON-array column, or the v0..vN columns in order. */
  vector: { json: number } | { columns: number[] };
  metadata: { index: number; name: string }[];
}

export function csvLayout(header: string[], opts: SourceOptions, headerLine = 1): Layout {
  const at = `line ${headerLine}`;
  const names = header.map((h) => h.trim());
  const id = names.indexOf(opts.idField);
  if (id < 0 && opts.idPrefix === undefined) {
    throw new InputError(`${at}: no ${JSON.stringify(opts.idField)} column (use --id-field, or --id-prefix to number the rows)`);
  }
  const json = names.indexOf(opts.vectorField);
  let vector: Layout["vector"];
  const used = new Set<number>([id]);
  if (json >= 0) {
    vector = { json };
    used.add(json);
  } else {
    const comps = names
      .map((n, index) => ({ m: /^v([0-9]+)$/.exec(n), index }))
      .filter((x): x is { m: RegExpExecArray; index: number } => x.m !== null)
      .map((x) => ({ k: Number(x.m[1]), index: x.index }))
      .sort((a, b) => a.k - b.k);
    if (comps.length === 0) {
      throw new InputError(`${at}: no vector: expected a ${JSON.stringify(opts.vectorField)} column holding a JSON array, or columns v0..vN`);
    }
    comps.forEach((c, k) => {
      if (c.k !== k) throw new InputError(`${at}: the vector columns must be v0..v${comps.length - 1} without gaps; v${k} is missing`);
    });
    vector = { columns: comps.map((c) => c.index) };
    for (const c of comps) used.add(c.index);
  }
  const metadata = names.flatMap((name, index) => (used.has(index) || name === "" ? [] : [{ index, name }]));
  return { id: id < 0 ? undefined : id, vector, metadata };
}

export function csvRecord(fields: string[], line: number, index: number, layout: Layout, header: string[], opts: SourceOptions): Omit<SourceRecord, "end"> {
  const at = `line ${line}`;
  if (fields.length > header.length) throw new InputError(`${at}: ${fields.length} fields, but the header has ${header.length}`);
  let id: string;
  const rawId = layout.id === undefined ? "" : (fields[layout.id] ?? "");
  if (rawId === "") {
    if (opts.idPrefix === undefined) throw new InputError(`${at}: the ${JSON.stringify(opts.idField)} is empty`);
    id = `${opts.idPrefix}${index}`;
  } else {
    id = rawId;
  }
  let vector: number[];
  if ("json" in layout.vector) {
    const cell = (fields[layout.vector.json] ?? "").trim();
    if (cell === "") throw new InputError(`${at}: the ${JSON.stringify(opts.vectorField)} is empty`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(cell);
    } catch {
      throw new InputError(`${at}: ${JSON.stringify(opts.vectorField)} is not a JSON array: ${cell.length > 40 ? `${cell.slice(0, 40)}…` : cell}`);
    }
    vector = vectorFromJson(parsed, `${at}: ${JSON.stringify(opts.vectorField)}`);
  } else {
    vector = layout.vector.columns.map((col, k) => {
      const cell = (fields[col] ?? "").trim();
      if (cell === "") throw new InputError(`${at}: v${k} is empty`);
      const x = Number(cell);
      if (!FLOAT.test(cell) || !Number.isFinite(x)) throw new InputError(`${at}: v${k} is not a number: ${JSON.stringify(cell)}`);
      return x;
    });
  }
  const metadata: JsonObject = {};
  for (const { index: col, name } of layout.metadata) {
    const cell = fields[col];
    if (cell === undefined || cell === "") continue;
    metadata[name] = csvValue(cell);
  }
  return { id, vector, loc: line, ...(Object.keys(metadata).length > 0 ? { metadata } : {}) };
}

export async function openCsv(path: string, opts: SourceOptions, signal?: AbortSignal): Promise<RecordSource> {
  const { size } = await stat(path);
  return {
    format: "csv",
    unit: "line",
    totalBytes: size,
    totalRecords: undefined,
    async *[Symbol.asyncIterator]() {
      let header: string[] | undefined;
      let layout: Layout | undefined;
      let index = 0;
      for await (const r of csvRecords(readLines(path, signal))) {
        if (header === undefined || layout === undefined) {
          header = r.fields;
          layout = csvLayout(header, opts, r.line);
          continue;
        }
        yield { ...csvRecord(r.fields, r.line, index, layout, header, opts), end: r.end };
        index++;
      }
    },
  };
}
