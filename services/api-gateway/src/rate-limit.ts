// Per-key rate limits: two token buckets per principal, one for requests and one for
// request bytes. The map holds one entry per configured key (plus "anonymous"), so it is
// bounded by the configuration.
import { ResourceExhaustedError } from "@vecraft/common";
import type { ApiKeySpec } from "./auth.js";
import { ANONYMOUS } from "./auth.js";

/**
 * A token bucket refilled continuously at `ratePerSecond` up to `burst`. A cost larger
 * than the burst is allowed when the bucket is full and leaves it in debt, so that one
 * large request is never refused forever; the debt delays the next ones instead.
 */
export class TokenBucket {
  #tokens: number;
  #last: number;

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    private readonly now: () => number,
  ) {
    if (!(ratePerSecond > 0) || !(burst > 0)) throw new RangeError("TokenBucket: rate and burst must be > 0");
    this.#tokens = burst;
    this.#last = now();
  }

  #refill(): void {
    const t = this.now();
    const elapsed = Math.max(0, t - this.#last);
    this.#last = t;
    this.#tokens = Math.min(this.burst, this.#tokens + (elapsed * this.ratePerSecond) / 1000);
  }

  /** Ms until `cost` could be taken (0: now). Does not take anything. */
  waitMs(cost: number): number {
    this.#refill();
    const need = Math.min(cost, this.burst);
    if (this.#tokens >= need) return 0;
    return Math.ceil(((need - this.#tokens) * 1000) / this.ratePerSecond);
  }

  take(cost: number): void {
    this.#tokens -= cost;
  }
}

export interface RateDefaults {
  /** Requests per second for keys without their own limit; 0 is unlimited. */
  readonly requestsPerSecond: number;
  /** Bytes per second for keys without their own limit; 0 is unlimited. */
  readonly bytesPerSecond: number;
}

interface Limits {
  readonly requests: TokenBucket | undefined;
  readonly bytes: TokenBucket | undefined;
}

export class RateLimiter {
  readonly #byPrincipal = new Map<string, Limits>();

  constructor(keys: readonly ApiKeySpec[], defaults: RateDefaults, now: () => number = () => performance.now()) {
    const make = (rate: number | undefined, dflt: number, minBurst: number): TokenBucket | undefined => {
      const r = rate ?? dflt;
      // One second's worth of burst: a client may send a second's allowance at once.
      return r > 0 ? new TokenBucket(r, Math.max(minBurst, r), now) : undefined;
    };
    this.#byPrincipal.set(ANONYMOUS.principal, {
      requests: make(undefined, defaults.requestsPerSecond, 1),
      bytes: make(undefined, defaults.bytesPerSecond, 1),
    });
    for (const k of keys) {
      this.#byPrincipal.set(k.id, {
        requests: make(k.requestsPerSecond, defaults.requestsPerSecond, 1),
        bytes: make(k.bytesPerSecond, defaults.bytesPerSecond, 1),
      });
    }
  }

  /** Whether `principal` has a bytes limit (so that the caller needs to measure requests). */
  limitsBytes(principal: string): boolean {
    return this.#byPrincipal.get(principal)?.bytes !== undefined;
  }

  /**
   * Admits one request of `bytes` bytes or throws RESOURCE_EXHAUSTED with a retry hint
   * (`vecraft-retry-after-ms` metadata and the wait in the message). Nothing is taken
   * from either bucket when the request is refused.
   */
  admit(principal: string, bytes: number): void {
    const l = this.#byPrincipal.get(principal);
    if (l === undefined) return;
    const reqWait = l.requests?.waitMs(1) ?? 0;
    const byteWait = l.bytes?.waitMs(bytes) ?? 0;
    if (reqWait > 0 || byteWait > 0) {
      const retryAfterMs = Math.max(reqWait, byteWait);
      const which = reqWait >= byteWait ? `${l.requests?.ratePerSecond ?? 0} requests/s` : `${l.bytes?.ratePerSecond ?? 0} bytes/s`;
      throw new ResourceExhaustedError(`rate limit of ${which} for API key ${JSON.stringify(principal)} exceeded; retry in ${retryAfterMs} ms`, {
        details: { retryAfterMs, limit: reqWait >= byteWait ? "requests" : "bytes" },
      });
    }
    l.requests?.take(1);
    l.bytes?.take(bytes);
  }
}
