// Passes of a background controller (failover, journal partition map) that never overlap:
// triggered by every catalog snapshot the feed reads, by a periodic timer on the injected
// clock, and on demand; triggers during a pass coalesce into one more pass.
import { UnavailableError } from "@vecraft/common";
import type { Catalog } from "./catalog.js";
import type { Clock } from "./store/clock.js";

export interface SerialPassesOptions<R> {
  readonly clock: Clock;
  /** Pause between timer-triggered passes; 0: none. */
  readonly intervalMs: number;
  /** One pass. */
  readonly run: (signal: AbortSignal) => Promise<R>;
  /** A triggered pass failed (not called once closing); direct pass() callers get their own errors. */
  readonly onError: (e: unknown) => void;
}

export class SerialPasses<R> {
  private readonly stop = new AbortController();
  private tail: Promise<unknown> = Promise.resolve();
  private queued = false;
  private cancelInterval: (() => void) | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly opts: SerialPassesOptions<R>) {}

  /** Aborted by close(). */
  get signal(): AbortSignal {
    return this.stop.signal;
  }

  /** Follows `catalog`'s feed, arms the timer and triggers a first pass; false if already following. */
  follow(catalog: Catalog): boolean {
    if (this.unsubscribe !== undefined) return false;
    this.unsubscribe = catalog.onSnapshot(() => this.trigger());
    this.armInterval();
    this.trigger();
    return true;
  }

  /** Schedules a pass (coalesced with one already waiting). */
  trigger(): void {
    if (this.queued || this.stop.signal.aborted) return;
    this.queued = true;
    this.tail = this.tail.then(async () => {
      this.queued = false;
      if (this.stop.signal.aborted) return;
      try {
        await this.opts.run(this.stop.signal);
      } catch (e) {
        if (!this.stop.signal.aborted) this.opts.onError(e);
      }
    });
  }

  /** Runs one pass now (after any running one) and returns what it did. */
  pass(signal: AbortSignal = this.stop.signal): Promise<R> {
    const p = this.tail.then(() => this.opts.run(signal));
    this.tail = p.catch(() => undefined);
    return p;
  }

  /** Stops triggering passes and waits for the running one. */
  async close(): Promise<void> {
    this.stop.abort(new UnavailableError("the meta-manager is shutting down"));
    this.unsubscribe?.();
    this.cancelInterval?.();
    await this.tail.catch(() => undefined);
  }

  private armInterval(): void {
    if (this.opts.intervalMs <= 0 || this.stop.signal.aborted) return;
    this.cancelInterval = this.opts.clock.setTimer(() => {
      this.trigger();
      this.armInterval();
    }, this.opts.intervalMs);
  }
}
