import { isRetryable as defaultIsRetryable } from "./errors.js";

/** The reason an aborted signal carries, or a standard AbortError when it has none. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

/**
 * Races a promise with a signal, without cancelling the shared promise itself. Rejects
 * with the signal's reason (whatever the aborting code chose, often a ConnectError), as
 * abortableSleep does; the abandoned promise's own failure is then ignored.
 */
export function raceSignal<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return p;
  const abandon = (): Promise<never> => {
    p.catch(() => undefined); // abandoned: its outcome no longer matters
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the abort reason passes through untouched
    return Promise.reject(abortReason(signal));
  };
  if (signal.aborted) return abandon();
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      abandon().catch(reject);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- passes the original rejection through
        reject(e);
      },
    );
  });
}

/**
 * Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. The
 * timer is cleared on abort and the abort listener is removed when the sleep ends, so
 * long-lived signals do not collect listeners.
 */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      // The reason is whatever the aborting code chose (often a ConnectError); it passes
      // through untouched, as with fetch, so the caller can tell why it was stopped.
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      reject(abortReason(signal ?? AbortSignal.abort()));
    };
    const timer =
      signal?.aborted === true
        ? undefined
        : setTimeout(() => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
          }, Math.max(0, ms));
    if (timer === undefined) {
      onAbort();
      return;
    }
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export interface BackoffOptions {
  /** The first delay before jitter, in ms. */
  initialMs: number;
  /** The cap on any delay, in ms (applied after jitter). */
  maxMs: number;
  /** Growth factor per attempt (>= 1). */
  multiplier: number;
  /**
   * A fraction in [0, 1]: each delay is drawn uniformly from `base * (1 ± jitter)`, so
   * clients that failed together do not retry in lockstep. `"full"` draws from
   * `[0, base]` ("full jitter", the widest spread).
   */
  jitter: number | "full";
  /** Stop once the delays handed out would add up to more than this, in ms. */
  budgetMs?: number;
  /** Uniform random in [0, 1); default `Math.random`. Injected by tests. */
  random?: () => number;
}

function checkBackoff(o: BackoffOptions): void {
  const bad = (what: string): never => {
    throw new RangeError(`invalid backoff options: ${what}`);
  };
  if (!Number.isFinite(o.initialMs) || o.initialMs < 0) bad(`initialMs must be >= 0, got ${o.initialMs}`);
  if (!Number.isFinite(o.maxMs) || o.maxMs < o.initialMs) bad(`maxMs must be >= initialMs, got ${o.maxMs}`);
  if (!Number.isFinite(o.multiplier) || o.multiplier < 1) bad(`multiplier must be >= 1, got ${o.multiplier}`);
  if (o.jitter !== "full" && (!Number.isFinite(o.jitter) || o.jitter < 0 || o.jitter > 1)) {
    bad(`jitter must be in [0, 1] or "full", got ${o.jitter}`);
  }
  if (o.budgetMs !== undefined && (Number.isNaN(o.budgetMs) || o.budgetMs < 0)) {
    bad(`budgetMs must be >= 0, got ${o.budgetMs}`);
  }
}

/**
 * An endless (or budget-bounded) sequence of retry delays in ms: exponential growth from
 * `initialMs` by `multiplier`, jittered, capped at `maxMs`.
 */
export function* backoffDelays(options: BackoffOptions): Generator<number, void, undefined> {
  checkBackoff(options);
  const random = options.random ?? Math.random;
  const budget = options.budgetMs ?? Number.POSITIVE_INFINITY;
  let base = options.initialMs;
  let spent = 0;
  for (;;) {
    const r = random();
    const jittered = options.jitter === "full" ? base * r : base * (1 - options.jitter + 2 * options.jitter * r);
    const delay = Math.min(options.maxMs, Math.max(0, Math.round(jittered)));
    if (spent + delay > budget) {
      return;
    }
    spent += delay;
    yield delay;
    base = Math.min(options.maxMs, base * options.multiplier);
  }
}

export const DEFAULT_BACKOFF: Readonly<Omit<BackoffOptions, "budgetMs" | "random">> = Object.freeze({
  initialMs: 100,
  maxMs: 5_000,
  multiplier: 2,
  jitter: 0.2,
});

export interface RetryAttemptInfo {
  /** The attempt that failed, from 1. */
  attempt: number;
  /** The wait before the next attempt. */
  delayMs: number;
  error: unknown;
}

export interface RetryOptions extends Partial<BackoffOptions> {
  /** Aborts the waits and is passed to every attempt. */
  signal?: AbortSignal;
  /** Which errors are worth retrying; default `isRetryable` from the error module. */
  isRetryable?: (e: unknown) => boolean;
  /** Total attempts including the first; default unlimited (the budget bounds them). */
  maxAttempts?: number;
  /**
   * Wall-clock budget in ms for the whole operation, attempts included: no retry starts
   * if its delay would end past the budget. Default 30 s.
   */
  budgetMs?: number;
  /** Called before each wait, e.g. to log or count retries. */
  onRetry?: (info: RetryAttemptInfo) => void;
  /** Milliseconds, monotonic enough for budgets; default `performance.now`. */
  clock?: () => number;
}

export const DEFAULT_RETRY_BUDGET_MS = 30_000;

/**
 * Runs `fn` until it succeeds, a non-retryable error occurs, the attempts or the budget
 * run out (the last error is rethrown as is), or `signal` aborts (its reason is thrown).
 */
export async function retry<T>(
  fn: (attempt: number, signal: AbortSignal | undefined) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const { signal, onRetry } = options;
  const retryable = options.isRetryable ?? defaultIsRetryable;
  const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
  const budgetMs = options.budgetMs ?? DEFAULT_RETRY_BUDGET_MS;
  const clock = options.clock ?? ((): number => performance.now());
  const delays = backoffDelays({
    initialMs: options.initialMs ?? DEFAULT_BACKOFF.initialMs,
    maxMs: options.maxMs ?? Math.max(DEFAULT_BACKOFF.maxMs, options.initialMs ?? 0),
    multiplier: options.multiplier ?? DEFAULT_BACKOFF.multiplier,
    jitter: options.jitter ?? DEFAULT_BACKOFF.jitter,
    ...(options.random !== undefined ? { random: options.random } : {}),
  });
  const started = clock();
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn(attempt, signal);
    } catch (e) {
      if (signal?.aborted === true || attempt >= maxAttempts || !retryable(e)) {
        throw e;
      }
      const next = delays.next();
      if (next.done === true || clock() - started + next.value > budgetMs) {
        throw e;
      }
      onRetry?.({ attempt, delayMs: next.value, error: e });
      await abortableSleep(next.value, signal);
    }
  }
}

/** A promise with its `resolve` and `reject` exposed, and whether it has settled. */
export class Deferred<T> {
  readonly promise: Promise<T>;
  #settled = false;
  #resolve!: (value: T | PromiseLike<T>) => void;
  #reject!: (reason: unknown) => void;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  get settled(): boolean {
    return this.#settled;
  }

  resolve(value: T | PromiseLike<T>): void {
    this.#settled = true;
    this.#resolve(value);
  }

  reject(reason: unknown): void {
    this.#settled = true;
    this.#reject(reason);
  }
}

/** The part of `process` that `onShutdownSignals` uses; tests pass an EventEmitter. */
export interface SignalSource {
  on(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

export interface ShutdownOptions {
  /** Default `["SIGINT", "SIGTERM"]`. */
  signals?: readonly NodeJS.Signals[];
  /** Called if the shutdown handler rejects; default sets `process.exitCode = 1`. */
  onError?: (e: unknown) => void;
  /** Default `process`. */
  source?: SignalSource;
}

export interface ShutdownHandle {
  /** Runs the shutdown now (e.g. after a fatal error); later calls return the same promise. */
  trigger(reason: NodeJS.Signals | "manual"): Promise<void>;
  /** Stops listening for the signals without shutting down. */
  dispose(): void;
}

/**
 * Runs `handler` once on the first SIGINT or SIGTERM. The listeners are removed as soon
 * as the shutdown starts, so a second signal gets Node's default behaviour and kills a
 * process whose graceful shutdown hangs. The returned promise of `trigger` never rejects:
 * a failing handler goes to `onError`.
 */
export function onShutdownSignals(
  handler: (reason: NodeJS.Signals | "manual") => Promise<void>,
  options: ShutdownOptions = {},
): ShutdownHandle {
  const source = options.source ?? process;
  const signals = options.signals ?? ["SIGINT", "SIGTERM"];
  const onError =
    options.onError ??
    ((): void => {
      process.exitCode = 1;
    });
  let running: Promise<void> | undefined;
  const listener = (signal: NodeJS.Signals): void => {
    void trigger(signal);
  };
  const dispose = (): void => {
    for (const s of signals) {
      source.off(s, listener);
    }
  };
  const trigger = (reason: NodeJS.Signals | "manual"): Promise<void> => {
    if (running === undefined) {
      dispose();
      running = Promise.resolve()
        .then(() => handler(reason))
        .catch(onError);
    }
    return running;
  };
  for (const s of signals) {
    source.on(s, listener);
  }
  return { trigger, dispose };
}
