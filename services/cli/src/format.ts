// Human output (aligned tables, times, short vectors) and machine output (JSON).
import { toDate } from "@vecraft/hlc";

export interface Column {
  header: string;
  /** Numbers read better right-aligned. */
  align?: "left" | "right";
}

/** An aligned table: a header row, then the rows; columns separated by two spaces. */
export function table(columns: readonly (Column | string)[], rows: readonly (readonly string[])[]): string {
  const cols = columns.map((c) => (typeof c === "string" ? { header: c } : c));
  const widths = cols.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cols
      .map((c, i) => {
        const cell = cells[i] ?? "";
        const w = widths[i] ?? 0;
        // The last left-aligned column is not padded, so lines have no trailing spaces.
        if (c.align === "right") return cell.padStart(w);
        return i === cols.length - 1 ? cell : cell.padEnd(w);
      })
      .join("  ");
  return [line(cols.map((c) => c.header)), ...rows.map(line)].join("\n");
}

/** `key: value` lines with the keys aligned. */
export function keyValues(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length + 1));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}`).join("\n");
}

/**
 * JSON for machines: bigints (timestamps, offsets) become strings, as in the protobuf
 * JSON mapping; typed arrays become arrays; Dates ISO strings.
 */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v: unknown) => {
      if (typeof v === "bigint") return v.toString();
      if (v instanceof Float32Array || v instanceof Float64Array) return Array.from(v);
      return v;
    },
    2,
  );
}

/** The wall-clock part of a packed HLC timestamp, as an ISO time; "-" for 0 (none). */
export function tsTime(ts: bigint): string {
  return ts <= 0n ? "-" : toDate(ts).toISOString();
}

/** 12345 -> "12,345". */
export function count(n: number | bigint): string {
  return n.toLocaleString("en-US");
}

/** A float short enough for a table. */
export function num(x: number, digits = 4): string {
  if (Number.isInteger(x)) return String(x);
  const fixed = x.toFixed(digits);
  return fixed.replace(/\.?0+$/, "") || "0";
}

/** "[0.1, 0.2, 0.3, ... (128)]": the first few values and the length. */
export function vectorPreview(v: readonly number[], show = 3): string {
  if (v.length === 0) return "-";
  const head = v.slice(0, show).map((x) => num(x, 3));
  return v.length <= show ? `[${head.join(", ")}]` : `[${head.join(", ")}, … (${v.length})]`;
}

/** Compact JSON cut to `max` characters; "-" for an empty or absent object. */
export function jsonPreview(value: unknown, max = 60): string {
  if (value === undefined || value === null) return "-";
  if (typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0) return "-";
  const text = JSON.stringify(value);
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Seconds as "1.2 s", "2m05s", "1h02m". */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : `${m}m${String(r).padStart(2, "0")}s`;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${count(n)} ${n === 1 ? one : many}`;
}
