// Checks of request fields that are not about a collection's schema (those live in
// @vecraft/model). Every rejection is INVALID_ARGUMENT naming the field.
import { InvalidArgumentError } from "@vecraft/common";
import { validateRecordId } from "@vecraft/model";

/** The longest client request id, in UTF-8 bytes (gateway.proto). */
export const MAX_REQUEST_ID_BYTES = 128;
/** Bounds of `k` (Search) and of page sizes. */
export const MAX_K = 1000;
export const MAX_PAGE = 1000;
export const DEFAULT_PAGE = 100;
/** The largest HNSW candidate list a search may ask for (the ef_search bound). */
export const MAX_EF = 4096;

export function invalidField(field: string, problem: string, index?: number): InvalidArgumentError {
  return new InvalidArgumentError(`${field}: ${problem}`, { details: index === undefined ? { field } : { field, index } });
}

// eslint-disable-next-line no-control-regex -- control characters are what we reject
const CONTROL = /[\u0000-\u001f\u007f]/;
const LONE_SURROGATE = /\p{Cs}/u;

/** A client request id: "" (none), or 1..128 bytes of printable, well-formed UTF-8. */
export function checkRequestId(requestId: string, field = "request_id"): string {
  if (requestId === "") return "";
  const bytes = Buffer.byteLength(requestId, "utf8");
  if (bytes > MAX_REQUEST_ID_BYTES) throw invalidField(field, `${bytes} bytes, at most ${MAX_REQUEST_ID_BYTES}`);
  if (CONTROL.test(requestId)) throw invalidField(field, "control characters are not allowed");
  if (LONE_SURROGATE.test(requestId)) throw invalidField(field, "not well-formed Unicode");
  return requestId;
}

/** A collection name given in a request (existence is checked against the catalog). */
export function checkCollectionName(name: string, field = "collection"): string {
  if (name === "") throw invalidField(field, "required");
  if (name.length > 64) throw invalidField(field, `${name.length} characters, at most 64`);
  return name;
}

export function checkK(k: number): number {
  if (k < 1 || k > MAX_K) throw invalidField("k", `${k} is out of range 1..${MAX_K}`);
  return k;
}

export function checkEf(ef: number, k: number): number {
  if (ef === 0) return 0;
  if (ef < k) throw invalidField("ef", `${ef} is smaller than k (${k})`);
  if (ef > MAX_EF) throw invalidField("ef", `${ef} is out of range ${k}..${MAX_EF}`);
  return ef;
}

/** A page size: 0 means the default, otherwise 1..MAX_PAGE. */
export function checkLimit(limit: number, field = "limit"): number {
  if (limit === 0) return DEFAULT_PAGE;
  if (limit > MAX_PAGE) throw invalidField(field, `${limit} is out of range 1..${MAX_PAGE}`);
  return limit;
}

/** Ids of a Get: 1..max, each a valid id, no duplicates. */
export function checkIds(ids: readonly string[], max: number): string[] {
  if (ids.length === 0) throw invalidField("ids", "at least one id is required");
  if (ids.length > max) throw invalidField("ids", `${ids.length} ids, at most ${max}`);
  const first = new Map<string, number>();
  ids.forEach((id, i) => {
    validateRecordId(id, `ids[${i}]`);
    const j = first.get(id);
    if (j !== undefined) throw invalidField(`ids[${i}]`, `duplicate of ids[${j}] ${JSON.stringify(id)}`, i);
    first.set(id, i);
  });
  return [...ids];
}
