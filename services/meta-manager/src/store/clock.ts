// Time as the meta store sees it: a wall clock for lease deadlines and a one-shot timer
// to expire them. Tests inject a manual clock that fires timers when it is advanced, so
// lease expiry is deterministic.

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Calls `fn` once, `ms` from now; returns a function that cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

/** The process's clock. Timers are unref'ed: a pending lease expiry never keeps the process alive. */
export const systemClock: Clock = Object.freeze({
  now: (): number => Date.now(),
  setTimer(fn: () => void, ms: number): () => void {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return () => clearTimeout(t);
  },
});
