// Typed reads of parsed flags. Every problem is a UsageError naming the flag.
import { parseDuration } from "@vecraft/common";
import { parseTimestamp } from "@vecraft/hlc";
import { UsageError } from "./errors.js";
import type { ParsedArgs } from "./registry.js";

export function stringOpt(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new UsageError(`--${name} needs a value`);
  return v;
}

export function requiredString(args: ParsedArgs, name: string): string {
  const v = stringOpt(args, name);
  if (v === undefined || v === "") throw new UsageError(`--${name} is required`);
  return v;
}

export function boolOpt(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}

export function listOpt(args: ParsedArgs, name: string): string[] {
  const v = args.values[name];
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => {
    if (typeof x !== "string") throw new UsageError(`--${name} needs a value`);
    return x;
  });
}

export interface IntRange {
  min?: number;
  max?: number;
}

/** A base-10 integer in range; `what` names it in the error. */
export function parseInteger(text: string, what: string, range: IntRange = {}): number {
  const t = text.trim();
  if (!/^-?[0-9]+$/.test(t)) throw new UsageError(`${what} must be an integer, got ${JSON.stringify(text)}`);
  const n = Number(t);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what} is out of range: ${text}`);
  if (range.min !== undefined && n < range.min) throw new UsageError(`${what} must be >= ${range.min}, got ${n}`);
  if (range.max !== undefined && n > range.max) throw new UsageError(`${what} must be <= ${range.max}, got ${n}`);
  return n;
}

export function intOpt(args: ParsedArgs, name: string, range: IntRange = {}): number | undefined {
  const v = stringOpt(args, name);
  return v === undefined ? undefined : parseInteger(v, `--${name}`, range);
}

/** A duration flag in ms: 500, "500ms", "2s", "1m". */
export function durationOpt(args: ParsedArgs, name: string): number | undefined {
  const v = stringOpt(args, name);
  if (v === undefined) return undefined;
  const ms = parseDuration(v);
  if (ms === undefined) throw new UsageError(`--${name} must be a duration like 500ms, 2s or 1m, got ${JSON.stringify(v)}`);
  return ms;
}

/** A JSON object flag (`--filter '{"genre": "drama"}'`). */
export function jsonObjectOpt(args: ParsedArgs, name: string): Record<string, unknown> | undefined {
  const v = stringOpt(args, name);
  if (v === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch (e) {
    throw new UsageError(`--${name} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`--${name} must be a JSON object, like '{"genre": "drama"}'`);
  }
  return parsed as Record<string, unknown>;
}

/**
 * A journal timestamp: the packed HLC value in decimal (as `ops` and `history` print it),
 * or an ISO-8601 UTC time with an optional logical counter (`2025-01-01T00:00:00Z`,
 * `2025-01-01T00:00:00.004Z,3`).
 */
export function parseTs(text: string, what: string): bigint {
  try {
    return parseTimestamp(text);
  } catch (e) {
    throw new UsageError(`${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}
