import { MAX_LOGICAL, MAX_WALL_MS, decode, encode, formatTimestamp } from "./timestamp.js";
import type { Timestamp } from "./timestamp.js";

/** A source of physical time, in integer milliseconds since the Unix epoch. */
export interface PhysicalClock {
  now(): number;
}

/** The process's wall clock. Tests and the simulator inject their own `PhysicalClock`. */
export const systemClock: PhysicalClock = Object.freeze({ now: (): number => Date.now() });

/** Default bound on how far a remote timestamp may run ahead of the local wall clock. */
export const DEFAULT_MAX_CLOCK_OFFSET_MS = 500;

export interface HybridLogicalClockOptions {
  /** Physical time source; defaults to `systemClock`. */
  clock?: PhysicalClock;
  /**
   * `update()` rejects a remote timestamp whose wall time is more than this many ms ahead
   * of the local physical clock. Default 500. Must be a finite number >= 0.
   */
  maxClockOffsetMs?: number;
  /**
   * Called when the physical clock reads earlier than it did at the previous reading. The
   * HLC keeps going forward regardless; this is for metrics and logs. It runs after the
   * clock's state has advanced, so an exception it throws propagates to the caller without
   * breaking monotonicity.
   */
  onBackwardJump?: (fromMs: number, toMs: number) => void;
}

/** Options after validation, as the clock uses them. */
export interface HybridLogicalClockConfig {
  readonly clock: PhysicalClock;
  readonly maxClockOffsetMs: number;
  readonly onBackwardJump: ((fromMs: number, toMs: number) => void) | undefined;
}

/**
 * A remote timestamp was too far in the future to accept. Taking it would drag this
 * clock, and every timestamp it issues afterwards, ahead of real time by the same amount,
 * so it is refused; retrying the same timestamp soon will not help, hence not retryable.
 */
export class ClockOffsetError extends Error {
  override readonly name = "ClockOffsetError";
  readonly retryable = false;
  readonly remote: Timestamp;
  readonly remoteWallMs: number;
  readonly localWallMs: number;
  readonly maxOffsetMs: number;

  constructor(remote: Timestamp, localWallMs: number, maxOffsetMs: number) {
    const remoteWallMs = decode(remote).wallMs;
    super(
      `remote timestamp ${formatTimestamp(remote)} is ${remoteWallMs - localWallMs} ms ahead of the local ` +
        `clock (${new Date(localWallMs).toISOString()}), more than the maximum clock offset of ${maxOffsetMs} ms`,
    );
    this.remote = remote;
    this.remoteWallMs = remoteWallMs;
    this.localWallMs = localWallMs;
    this.maxOffsetMs = maxOffsetMs;
  }
}

/** Validates options once into a frozen config (throws a RangeError on bad values). */
export function resolveHybridLogicalClockOptions(options: HybridLogicalClockOptions = {}): HybridLogicalClockConfig {
  const maxClockOffsetMs = options.maxClockOffsetMs ?? DEFAULT_MAX_CLOCK_OFFSET_MS;
  if (!Number.isFinite(maxClockOffsetMs) || maxClockOffsetMs < 0) {
    throw new RangeError(`maxClockOffsetMs must be a finite number >= 0, got ${String(maxClockOffsetMs)}`);
  }
  return Object.freeze({
    clock: options.clock ?? systemClock,
    maxClockOffsetMs,
    onBackwardJump: options.onBackwardJump,
  });
}

/**
 * A Hybrid Logical Clock (Kulkarni et al., 2014, as in CockroachDB's `hlc.Clock`).
 *
 * It issues timestamps that strictly increase, stay close to physical time, and exceed
 * every timestamp it has observed through `update()` or `seed()`. The state is the pair
 * `(wallMs, logical)` kept as two Numbers: packing happens only at the API edge, which
 * keeps the hot path free of bigint arithmetic.
 *
 * Logical overflow: when a `now()` would need logical > MAX_LOGICAL, wall time advances by
 * 1 ms and logical restarts at 0. Wall time then runs at most 1 ms ahead of the physical
 * clock per 65,536 timestamps issued within one physical millisecond, which Node cannot
 * sustain, so the drift is bounded in practice.
 */
export class HybridLogicalClock {
  readonly config: HybridLogicalClockConfig;
  #wallMs = 0;
  #logical = 0;
  // The previous physical reading, to notice the clock stepping back (NTP, VM migration).
  #lastPhysicalMs: number | undefined;

  constructor(options: HybridLogicalClockOptions = {}) {
    this.config = resolveHybridLogicalClockOptions(options);
  }

  get maxClockOffsetMs(): number {
    return this.config.maxClockOffsetMs;
  }

  /**
   * Reads the physical clock without changing any state. Fractional readings are floored;
   * a reading outside [0, 2^48) ms throws a RangeError because it cannot be encoded.
   */
  physicalNow(): number {
    const raw = this.config.clock.now();
    const ms = Math.floor(raw);
    if (!Number.isSafeInteger(ms) || ms < 0 || ms > MAX_WALL_MS) {
      throw new RangeError(`physical clock returned ${String(raw)}, outside [0, 2^48) ms since the epoch`);
    }
    return ms;
  }

  /** A new timestamp, greater than every one issued, updated or seeded before. */
  now(): Timestamp {
    const physicalMs = this.physicalNow();
    const previousPhysicalMs = this.#observePhysical(physicalMs);
    if (physicalMs > this.#wallMs) {
      this.#wallMs = physicalMs;
      this.#logical = 0;
    } else if (this.#logical < MAX_LOGICAL) {
      this.#logical += 1;
    } else {
      if (this.#wallMs >= MAX_WALL_MS) {
        throw new RangeError("HLC wall time would exceed 2^48 ms; the clock cannot advance further");
      }
      this.#wallMs += 1;
      this.#logical = 0;
    }
    const issued = encode(this.#wallMs, this.#logical);
    this.#reportBackwardJump(previousPhysicalMs, physicalMs);
    return issued;
  }

  /**
   * Merges a timestamp received from another node or a client's causal token, so the next
   * `now()` is greater than `remote`. Throws `ClockOffsetError` and leaves the clock
   * untouched if `remote` is more than `maxClockOffsetMs` ahead of the physical clock.
   */
  update(remote: Timestamp): void {
    const { wallMs, logical } = decode(remote);
    const physicalMs = this.physicalNow();
    if (wallMs - physicalMs > this.config.maxClockOffsetMs) {
      throw new ClockOffsetError(remote, physicalMs, this.config.maxClockOffsetMs);
    }
    const previousPhysicalMs = this.#observePhysical(physicalMs);
    this.#forward(wallMs, logical);
    this.#reportBackwardJump(previousPhysicalMs, physicalMs);
  }

  /**
   * Moves the clock past the largest timestamp found in a recovered log, so a restarted
   * leader never reissues or undercuts one. Unlike `update()` it accepts any valid value:
   * the log was written by this partition's own leaders and is trusted, and refusing it
   * would leave the clock able to go backwards.
   */
  seed(maxTsInLog: Timestamp): void {
    const { wallMs, logical } = decode(maxTsInLog);
    this.#forward(wallMs, logical);
  }

  /** The largest timestamp issued, updated or seeded so far (ZERO initially). */
  last(): Timestamp {
    return encode(this.#wallMs, this.#logical);
  }

  #forward(wallMs: number, logical: number): void {
    if (wallMs > this.#wallMs || (wallMs === this.#wallMs && logical > this.#logical)) {
      this.#wallMs = wallMs;
      this.#logical = logical;
    }
  }

  #observePhysical(physicalMs: number): number | undefined {
    const previous = this.#lastPhysicalMs;
    this.#lastPhysicalMs = physicalMs;
    return previous;
  }

  #reportBackwardJump(previousMs: number | undefined, physicalMs: number): void {
    if (previousMs !== undefined && physicalMs < previousMs) {
      this.config.onBackwardJump?.(previousMs, physicalMs);
    }
  }
}
