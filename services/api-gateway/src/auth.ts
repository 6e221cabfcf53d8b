// API keys and roles (DESIGN.md §6). Keys come from a JSON file read once at startup;
// the gateway keeps only their SHA-256 digests. With no keys configured the gateway is
// open: every caller is "anonymous" with the admin role.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { PermissionDeniedError, UnauthenticatedError } from "./errors.js";

export type Role = "reader" | "writer" | "admin";

const ROLES: readonly Role[] = ["reader", "writer", "admin"];
const RANK: Readonly<Record<Role, number>> = { reader: 1, writer: 2, admin: 3 };

/** One configured API key, validated. */
export interface ApiKeySpec {
  /** The principal: written into journal entries as who made the request. */
  readonly id: string;
  /** SHA-256 of the secret key, lowercase hex. */
  readonly keySha256: string;
  readonly role: Role;
  /** The collections the key may touch; undefined means every collection. */
  readonly collections: ReadonlySet<string> | undefined;
  /** Requests per second (0: unlimited; undefined: the gateway's default). */
  readonly requestsPerSecond: number | undefined;
  /** Request bytes per second (0: unlimited; undefined: the gateway's default). */
  readonly bytesPerSecond: number | undefined;
}

/** Who is calling, as the handlers see it. */
export interface Caller {
  readonly principal: string;
  readonly role: Role;
  /** undefined: every collection. */
  readonly collections: ReadonlySet<string> | undefined;
}

/** The caller of an open gateway (no keys configured). */
export const ANONYMOUS: Caller = Object.freeze({ principal: "anonymous", role: "admin" as const, collections: undefined });

const ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const KNOWN_FIELDS = new Set(["id", "key", "key_sha256", "role", "collections", "requests_per_second", "bytes_per_second"]);
/** A plaintext key shorter than this is too easy to guess. */
const MIN_KEY_LENGTH = 16;

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/**
 * Validates the API keys document: a list of keys, or `{ "keys": [...] }`. Each key is
 * `{ id, key_sha256 (hex) | key (plaintext, hashed at load), role: admin|writer|reader,
 * collections?: [names], requests_per_second?, bytes_per_second? }`. Throws one Error
 * listing every problem, with `source` (the file) in the message.
 */
export function parseApiKeys(doc: unknown, source: string): ApiKeySpec[] {
  const problems: string[] = [];
  let list: unknown = doc;
  if (typeof doc === "object" && doc !== null && !Array.isArray(doc)) {
    list = (doc as Record<string, unknown>)["keys"];
  }
  if (!Array.isArray(list)) {
    throw new Error(`${source}: expected a list of API keys or {"keys": [...]}`);
  }
  const out: ApiKeySpec[] = [];
  const ids = new Set<string>();
  const digests = new Set<string>();
  (list as unknown[]).forEach((raw, i) => {
    const at = `keys[${i}]`;
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      problems.push(`${at}: expected an object`);
      return;
    }
    const k = raw as Record<string, unknown>;
    for (const f of Object.keys(k)) if (!KNOWN_FIELDS.has(f)) problems.push(`${at}.${f}: unknown field`);
    const id = k["id"];
    if (typeof id !== "string" || !ID.test(id)) {
      problems.push(`${at}.id: expected 1..128 characters of [A-Za-z0-9._:@-], starting with a letter or digit`);
    } else if (ids.has(id)) {
      problems.push(`${at}.id: duplicate id ${JSON.stringify(id)}`);
    } else if (id === ANONYMOUS.principal) {
      problems.push(`${at}.id: "anonymous" is reserved for the open gateway`);
    }
    let digest: string | undefined;
    const plain = k["key"];
    const hashed = k["key_sha256"];
    if (plain !== undefined && hashed !== undefined) {
      problems.push(`${at}: give key or key_sha256, not both`);
    } else if (typeof hashed === "string") {
      if (HEX64.test(hashed.toLowerCase())) digest = hashed.toLowerCase();
      else problems.push(`${at}.key_sha256: expected 64 hex digits`);
    } else if (typeof plain === "string") {
      if (plain.length >= MIN_KEY_LENGTH) digest = sha256Hex(plain);
      else problems.push(`${at}.key: at least ${MIN_KEY_LENGTH} characters`);
    } else {
      problems.push(`${at}: key_sha256 (or key) is required`);
    }
    if (digest !== undefined) {
      if (digests.has(digest)) problems.push(`${at}: the same key as an earlier entry`);
      digests.add(digest);
    }
    const role = k["role"];
    if (typeof role !== "string" || !(ROLES as readonly string[]).includes(role)) {
      problems.push(`${at}.role: expected admin, writer or reader`);
    }
    let collections: Set<string> | undefined;
    const cs = k["collections"];
    if (cs !== undefined) {
      if (!Array.isArray(cs) || cs.some((c) => typeof c !== "string" || c === "")) {
        problems.push(`${at}.collections: expected a list of collection names`);
      } else {
        collections = new Set(cs as string[]);
      }
    }
    const rate = (name: string): number | undefined => {
      const v = k[name];
      if (v === undefined) return undefined;
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
        problems.push(`${at}.${name}: expected a number >= 0 (0: unlimited)`);
        return undefined;
      }
      return v;
    };
    const requestsPerSecond = rate("requests_per_second");
    const bytesPerSecond = rate("bytes_per_second");
    if (typeof id === "string" && digest !== undefined && typeof role === "string" && (ROLES as readonly string[]).includes(role)) {
      ids.add(id);
      out.push(
        Object.freeze({
          id,
          keySha256: digest,
          role: role as Role,
          collections,
          requestsPerSecond,
          bytesPerSecond,
        }),
      );
    }
  });
  if (problems.length > 0) {
    throw new Error(`invalid API keys in ${source}:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  }
  return out;
}

/** Reads and validates the API keys file. */
export function loadApiKeysFile(path: string): ApiKeySpec[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`cannot read API keys from ${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return parseApiKeys(doc, path);
}

/** The key a request presents: `Authorization: Bearer <key>`, else `x-api-key`. */
export function presentedKey(headers: Headers): string | undefined {
  const auth = headers.get("authorization");
  if (auth !== null) {
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(auth);
    return m?.[1];
  }
  const k = headers.get("x-api-key");
  return k === null || k === "" ? undefined : k.trim();
}

/** The configured keys, by digest. */
export class KeyRing {
  readonly #byDigest = new Map<string, ApiKeySpec>();

  constructor(keys: readonly ApiKeySpec[]) {
    for (const k of keys) this.#byDigest.set(k.keySha256, k);
  }

  /** True when no keys are configured: everyone is the anonymous admin. */
  get open(): boolean {
    return this.#byDigest.size === 0;
  }

  get keys(): readonly ApiKeySpec[] {
    return [...this.#byDigest.values()];
  }

  /**
   * The key behind a presented secret. Lookup is by SHA-256 digest, so the time it takes
   * does not depend on how much of a guess matches a real key.
   */
  authenticate(presented: string | undefined): ApiKeySpec | undefined {
    if (this.open) return undefined;
    if (presented === undefined) {
      throw new UnauthenticatedError("missing API key (send Authorization: Bearer <key> or x-api-key)");
    }
    const spec = this.#byDigest.get(sha256Hex(presented));
    if (spec === undefined) throw new UnauthenticatedError("unknown API key");
    return spec;
  }
}

export function callerOf(spec: ApiKeySpec | undefined): Caller {
  return spec === undefined ? ANONYMOUS : { principal: spec.id, role: spec.role, collections: spec.collections };
}

export function hasRole(caller: Caller, role: Role): boolean {
  return RANK[caller.role] >= RANK[role];
}

/** Whether the caller's scope includes the collection. */
export function inScope(caller: Caller, collection: string): boolean {
  return caller.collections === undefined || caller.collections.has(collection);
}

/** Throws PERMISSION_DENIED unless the caller has `role` (or a higher one). */
export function requireRole(caller: Caller, role: Role, what: string): void {
  if (!hasRole(caller, role)) {
    throw new PermissionDeniedError(`API key ${JSON.stringify(caller.principal)} has role ${caller.role}; ${what} needs ${role}`);
  }
}

/** Throws PERMISSION_DENIED unless the caller has `role` on `collection`. */
export function requireCollection(caller: Caller, collection: string, role: Role, what: string): void {
  requireRole(caller, role, what);
  if (!inScope(caller, collection)) {
    throw new PermissionDeniedError(`API key ${JSON.stringify(caller.principal)} may not access collection ${JSON.stringify(collection)}`);
  }
}

/** Throws PERMISSION_DENIED unless the caller may see every collection with `role`. */
export function requireUnscoped(caller: Caller, role: Role, what: string): void {
  requireRole(caller, role, what);
  if (caller.collections !== undefined) {
    throw new PermissionDeniedError(`API key ${JSON.stringify(caller.principal)} is limited to some collections; ${what} needs a key for all of them`);
  }
}
