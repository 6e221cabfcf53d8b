// Session tokens are opaque to clients. Today's server encodes a packed HLC timestamp as
// a decimal string, so two such tokens compare as integers; anything else (a future
// format) cannot be compared here, and then the latest one received wins.

const DECIMAL = /^[0-9]+$/;

function asInteger(token: string): bigint | undefined {
  return DECIMAL.test(token) ? BigInt(token) : undefined;
}

/**
 * Which of two tokens a session should keep: the larger when both are decimal integers,
 * otherwise `next` (the latest seen). Empty tokens carry nothing and never win.
 */
export function laterSessionToken(current: string | undefined, next: string | undefined): string | undefined {
  if (next === undefined || next === "") return current;
  if (current === undefined || current === "") return next;
  const a = asInteger(current);
  const b = asInteger(next);
  if (a !== undefined && b !== undefined) return b > a ? next : current;
  return next;
}

/**
 * The greatest session token a client has seen in any response. Read-your-writes across
 * processes works by carrying `value` over (e.g. in an environment variable).
 */
export class SessionTokenTracker {
  #token: string | undefined;

  constructor(initial?: string) {
    this.#token = initial === "" ? undefined : initial;
  }

  /** The token to present, or undefined before the first response that carried one. */
  get value(): string | undefined {
    return this.#token;
  }

  /** Replaces the token as is (even with an older one): the caller knows its session. */
  set value(token: string | undefined) {
    this.#token = token === "" ? undefined : token;
  }

  /** Merges a token from a response: keeps the greater one. */
  observe(token: string | undefined): void {
    this.#token = laterSessionToken(this.#token, token);
  }
}
