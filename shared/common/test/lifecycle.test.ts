import { EventEmitter } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  Deferred,
  NotFoundError,
  UnavailableError,
  abortableSleep,
  backoffDelays,
  onShutdownSignals,
  retry,
} from "../src/index.js";
import type { BackoffOptions } from "../src/index.js";

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

function take(options: BackoffOptions, n: number): number[] {
  const out: number[] = [];
  for (const d of backoffDelays(options)) {
    out.push(d);
    if (out.length === n) break;
  }
  return out;
}

/** A deterministic random source cycling through `values`. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

describe("backoffDelays", () => {
  it("grows by the multiplier and caps at maxMs", () => {
    expect(take({ initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0 }, 7)).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
  });

  it("keeps ±jitter delays within base*(1±jitter), never above maxMs", () => {
    const o = { initialMs: 100, maxMs: 10_000, multiplier: 2, jitter: 0.2 };
    expect(take({ ...o, random: () => 0 }, 3)).toEqual([80, 160, 320]);
    expect(take({ ...o, random: () => 0.999999 }, 3)).toEqual([120, 240, 480]);
    for (const d of take({ ...o, maxMs: 1000 }, 200).slice(10)) {
      expect(d).toBeGreaterThanOrEqual(800);
      expect(d).toBeLessThanOrEqual(1000);
    }
  });

  it("spreads retries: jittered delays differ between clients", () => {
    const o = { initialMs: 1000, maxMs: 1000, multiplier: 1, jitter: 0.5 };
    const delays = new Set(take(o, 50));
    expect(delays.size).toBeGreaterThan(10);
  });

  it("draws full jitter from [0, base]", () => {
    const o = { initialMs: 100, maxMs: 10_000, multiplier: 2, jitter: "full" as const };
    expect(take({ ...o, random: sequence(0, 0.5, 0.999999) }, 3)).toEqual([0, 100, 400]);
  });

  it("stops when the budget would be exceeded", () => {
    const delays = [...backoffDelays({ initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0, budgetMs: 1000 })];
    expect(delays).toEqual([100, 200, 400]);
    expect(delays.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(1000);
  });

  it("rejects nonsensical options", () => {
    const ok = { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.1 };
    expect(() => take({ ...ok, multiplier: 0.5 }, 1)).toThrow(RangeError);
    expect(() => take({ ...ok, jitter: 1.5 }, 1)).toThrow(RangeError);
    expect(() => take({ ...ok, maxMs: 10 }, 1)).toThrow(RangeError);
    expect(() => take({ ...ok, initialMs: -1 }, 1)).toThrow(RangeError);
  });
});

describe("abortableSleep", () => {
  it("resolves after the delay and removes its abort listener", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const remove = vi.spyOn(controller.signal, "removeEventListener");
    let done = false;
    const p = abortableSleep(1000, controller.signal).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await p;
    expect(done).toBe(true);
    expect(remove).toHaveBeenCalledWith("abort", expect.any(Function));
  });

  it("rejects with the signal's reason as soon as it aborts, and clears its timer", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const p = abortableSleep(60_000, controller.signal);
    // Attach the expectation first so the rejection is never momentarily unhandled.
    const assertion = expect(p).rejects.toBe("stop");
    controller.abort("stop");
    await assertion;
    expect(vi.getTimerCount()).toBe(0);
  });

  it("rejects at once when the signal is already aborted", async () => {
    const reason = new Error("gone");
    await expect(abortableSleep(10, AbortSignal.abort(reason))).rejects.toBe(reason);
  });
});

describe("retry", () => {
  it("retries retryable errors with backoff until success", async () => {
    vi.useFakeTimers();
    const fn = vi.fn((attempt: number) =>
      attempt < 3 ? Promise.reject(new UnavailableError("election")) : Promise.resolve("ok"),
    );
    const waits: number[] = [];
    const p = retry(fn, { initialMs: 100, multiplier: 2, jitter: 0, onRetry: (i) => waits.push(i.delayMs) });
    await vi.advanceTimersByTimeAsync(300);
    await expect(p).resolves.toBe("ok");
    expect(fn).toHaveBeenCalledTimes(3);
    expect(waits).toEqual([100, 200]);
  });

  it("rethrows a non-retryable error at once", async () => {
    const e = new NotFoundError("no such collection");
    const fn = vi.fn(() => Promise.reject(e));
    await expect(retry(fn, { initialMs: 1 })).rejects.toBe(e);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it("gives up after maxAttempts with the last error", async () => {
    let n = 0;
    const fn = (): Promise<never> => Promise.reject(new UnavailableError(`down ${++n}`));
    await expect(retry(fn, { initialMs: 1, jitter: 0, maxAttempts: 3 })).rejects.toThrow("down 3");
  });

  it("stops when the next wait would overrun the budget", async () => {
    let now = 0;
    vi.useFakeTimers();
    const fn = vi.fn(() => {
      now += 400; // each attempt takes 400 ms on the injected clock
      return Promise.reject(new UnavailableError("down"));
    });
    const p = retry(fn, { initialMs: 100, jitter: 0, multiplier: 1, budgetMs: 1000, clock: () => now });
    const assertion = expect(p).rejects.toThrow("down");
    await vi.advanceTimersByTimeAsync(1000);
    await assertion;
    // Elapsed time on the injected clock after attempts 1, 2, 3 is 400, 800, 1200 ms:
    // 400 + 100 and 800 + 100 fit the budget, 1200 + 100 does not.
    expect(fn).toHaveBeenCalledTimes(3);
  });

  it("stops waiting when the signal aborts and passes the signal to attempts", async () => {
    const controller = new AbortController();
    const seen: (AbortSignal | undefined)[] = [];
    const p = retry(
      (_attempt, signal) => {
        seen.push(signal);
        return Promise.reject(new UnavailableError("down"));
      },
      { initialMs: 60_000, budgetMs: 600_000, signal: controller.signal },
    );
    const assertion = expect(p).rejects.toBe("shutdown");
    await Promise.resolve();
    controller.abort("shutdown");
    await assertion;
    expect(seen).toEqual([controller.signal]);
  });
});

describe("Deferred", () => {
  it("exposes resolve/reject and whether it settled", async () => {
    const d = new Deferred<number>();
    expect(d.settled).toBe(false);
    d.resolve(7);
    expect(d.settled).toBe(true);
    await expect(d.promise).resolves.toBe(7);
    const r = new Deferred<void>();
    r.reject(new Error("x"));
    await expect(r.promise).rejects.toThrow("x");
  });
});

describe("onShutdownSignals", () => {
  it("runs the shutdown once, on the first signal, and stops listening", async () => {
    const source = new EventEmitter();
    const handler = vi.fn(() => Promise.resolve());
    const handle = onShutdownSignals(handler, { source });
    expect(source.listenerCount("SIGTERM")).toBe(1);
    expect(source.listenerCount("SIGINT")).toBe(1);

    source.emit("SIGTERM", "SIGTERM");
    // A second signal finds no listener: Node's default behaviour (exit) applies.
    expect(source.listenerCount("SIGTERM")).toBe(0);
    expect(source.listenerCount("SIGINT")).toBe(0);
    await handle.trigger("manual");
    expect(handler).toHaveBeenCalledTimes(1);
    expect(handler).toHaveBeenCalledWith("SIGTERM");
  });

  it("reports a failing shutdown to onError instead of rejecting", async () => {
    const source = new EventEmitter();
    const errors: unknown[] = [];
    const failure = new Error("flush failed");
    const handle = onShutdownSignals(() => Promise.reject(failure), { source, onError: (e) => errors.push(e) });
    await handle.trigger("manual");
    expect(errors).toEqual([failure]);
  });

  it("dispose removes the listeners without shutting down", () => {
    const source = new EventEmitter();
    const handler = vi.fn(() => Promise.resolve());
    onShutdownSignals(handler, { source, signals: ["SIGHUP"] }).dispose();
    source.emit("SIGHUP", "SIGHUP");
    expect(handler).not.toHaveBeenCalled();
    expect(source.listenerCount("SIGHUP")).toBe(0);
  });
});
