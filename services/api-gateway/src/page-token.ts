// Page tokens are opaque to clients: base64url of a small JSON object with a version and
// a kind, so that a token of one RPC or query is recognised as wrong in another. They are
// not secret (they hold an id and a timestamp) and need not be: a forged token can only
// ask for a different page of what the caller may read anyway.
import { InvalidArgumentError } from "@vecraft/common";
import { xxhash64 } from "@vecraft/model";

const VERSION = 1;
const MAX_TOKEN_LENGTH = 4096;
const encoder = new TextEncoder();

type Kind = "query" | "history" | "operations";

function bad(why = "not a page token this API returned"): InvalidArgumentError {
  return new InvalidArgumentError(`page_token: ${why}`, { details: { field: "page_token" } });
}

function encode(kind: Kind, body: Record<string, string>): string {
  return Buffer.from(JSON.stringify({ v: VERSION, k: kind, ...body }), "utf8").toString("base64url");
}

function decode(kind: Kind, token: string, fields: readonly string[]): Record<string, string> {
  if (token.length > MAX_TOKEN_LENGTH || !/^[A-Za-z0-9_-]+$/.test(token)) throw bad();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    // Not JSON: a token this API never returned.
    throw bad();
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw bad();
  const o = v as Record<string, unknown>;
  if (o["v"] !== VERSION) throw bad();
  if (o["k"] !== kind) throw bad("the token belongs to another RPC");
  const out: Record<string, string> = {};
  for (const f of fields) {
    const x = o[f];
    if (typeof x !== "string") throw bad();
    out[f] = x;
  }
  return out;
}

function uint64(text: string): bigint {
  if (!/^(0|[1-9][0-9]{0,19})$/.test(text)) throw bad();
  const n = BigInt(text);
  if (n >= 1n << 64n) throw bad();
  return n;
}

/** A short fingerprint of a query's parameters, so a token is only accepted by the same query. */
export function filterFingerprint(canonical: string): string {
  return xxhash64(encoder.encode(canonical)).toString(16);
}

export interface QueryPage {
  readonly collection: string;
  /** The incarnation of the collection: a token does not survive a drop and re-create. */
  readonly uid: string;
  readonly filter: string;
  readonly afterId: string;
  /** The read_ts of the page that returned the token: later pages read no older. */
  readonly readTs: bigint;
}

export function encodeQueryPageToken(p: QueryPage): string {
  return encode("query", { c: p.collection, u: p.uid, f: p.filter, a: p.afterId, t: p.readTs.toString() });
}

export function decodeQueryPageToken(token: string): QueryPage {
  const o = decode("query", token, ["c", "u", "f", "a", "t"]);
  return { collection: o["c"] ?? "", uid: o["u"] ?? "", filter: o["f"] ?? "", afterId: o["a"] ?? "", readTs: uint64(o["t"] ?? "") };
}

export interface HistoryPage {
  readonly collection: string;
  readonly id: string;
  /** The position of the last version returned. */
  readonly ts: bigint;
  readonly partition: number;
  readonly offset: bigint;
  readonly readTs: bigint;
}

export function encodeHistoryPageToken(p: HistoryPage): string {
  return encode("history", {
    c: p.collection,
    i: p.id,
    ts: p.ts.toString(),
    p: String(p.partition),
    o: p.offset.toString(),
    t: p.readTs.toString(),
  });
}

export function decodeHistoryPageToken(token: string): HistoryPage {
  const o = decode("history", token, ["c", "i", "ts", "p", "o", "t"]);
  const partition = Number(uint64(o["p"] ?? ""));
  if (partition > 0xffffffff) throw bad();
  return {
    collection: o["c"] ?? "",
    id: o["i"] ?? "",
    ts: uint64(o["ts"] ?? ""),
    partition,
    offset: uint64(o["o"] ?? ""),
    readTs: uint64(o["t"] ?? ""),
  };
}

export interface OperationsPage {
  /** The journal's own page token. */
  readonly journalToken: string;
  /** Fingerprint of the filters (collection, principal, from_ts, to_ts). */
  readonly filter: string;
  /** The read_ts fixed by the first page. */
  readonly readTs: bigint;
}

export function encodeOperationsPageToken(p: OperationsPage): string {
  return encode("operations", { j: p.journalToken, f: p.filter, t: p.readTs.toString() });
}

export function decodeOperationsPageToken(token: string): OperationsPage {
  const o = decode("operations", token, ["j", "f", "t"]);
  return { journalToken: o["j"] ?? "", filter: o["f"] ?? "", readTs: uint64(o["t"] ?? "") };
}
