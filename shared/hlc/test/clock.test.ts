import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ClockOffsetError,
  DEFAULT_MAX_CLOCK_OFFSET_MS,
  HybridLogicalClock,
  MAX_LOGICAL,
  MAX_WALL_MS,
  ZERO,
  decode,
  encode,
  maxTimestamp,
  systemClock,
} from "../src/index.js";
import type { Timestamp } from "../src/index.js";
import { ManualClock } from "./manual-clock.js";

// Physical readings stay below 2^47 so that seeds far in the future still fit in 2^48.
const PHYSICAL_MAX_MS = 2 ** 47;

type Op =
  | { readonly kind: "now" }
  | { readonly kind: "move"; readonly deltaMs: number }
  | { readonly kind: "update"; readonly aheadMs: number; readonly logical: number }
  | { readonly kind: "seed"; readonly aheadMs: number; readonly logical: number };

const moveArb: fc.Arbitrary<Op> = fc
  .oneof(
    fc.constant(0), // stall
    fc.integer({ min: 1, max: 50 }), // forward
    fc.integer({ min: -50, max: -1 }), // backward
    fc.integer({ min: 1_000, max: 100_000_000 }), // forward jump
    fc.integer({ min: -100_000_000, max: -1_000 }), // backward jump (NTP step)
  )
  .map((deltaMs) => ({ kind: "move", deltaMs }));

// Remote wall times relative to the local physical clock, clustered around the offset
// limit where an off-by-one would hide.
const aheadArb = fc.oneof(
  fc.integer({ min: -1_000, max: 1_000 }),
  fc.integer({ min: 495, max: 505 }),
  fc.integer({ min: -10_000_000, max: 10_000_000 }),
);
const logicalArb = fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: MAX_LOGICAL }));

type UpdateOp = Extract<Op, { kind: "update" }>;

const updateArb: fc.Arbitrary<UpdateOp> = fc
  .record({ aheadMs: aheadArb, logical: logicalArb })
  .map(({ aheadMs, logical }): UpdateOp => ({ kind: "update", aheadMs, logical }));

const seedArb: fc.Arbitrary<Op> = fc
  .record({
    aheadMs: fc.oneof(fc.integer({ min: -1_000_000, max: 1_000 }), fc.integer({ min: 0, max: 1_000_000_000 })),
    logical: logicalArb,
  })
  .map(({ aheadMs, logical }) => ({ kind: "seed", aheadMs, logical }));

const nowArb: fc.Arbitrary<Op> = fc.constant({ kind: "now" });

const opsArb = fc.array(
  fc.oneof(
    { arbitrary: nowArb, weight: 4 },
    { arbitrary: moveArb, weight: 3 },
    { arbitrary: updateArb, weight: 2 },
    { arbitrary: seedArb, weight: 1 },
  ),
  { maxLength: 200 },
);
const startArb = fc.integer({ min: 0, max: PHYSICAL_MAX_MS });
const maxOffsetArb = fc.oneof(fc.constant(DEFAULT_MAX_CLOCK_OFFSET_MS), fc.integer({ min: 0, max: 2_000 }));

function clamp(ms: number, max = PHYSICAL_MAX_MS): number {
  return Math.min(Math.max(ms, 0), max);
}

function remoteOf(op: { aheadMs: number; logical: number }, physicalMs: number): Timestamp {
  return encode(clamp(physicalMs + op.aheadMs, MAX_WALL_MS), op.logical);
}

function isRejected(remote: Timestamp, physicalMs: number, maxOffsetMs: number): boolean {
  return decode(remote).wallMs - physicalMs > maxOffsetMs;
}

function newClock(startMs: number, maxClockOffsetMs = DEFAULT_MAX_CLOCK_OFFSET_MS) {
  const physical = new ManualClock(startMs);
  const jumps: Array<[number, number]> = [];
  const hlc = new HybridLogicalClock({
    clock: physical,
    maxClockOffsetMs,
    onBackwardJump: (fromMs, toMs) => jumps.push([fromMs, toMs]),
  });
  return { physical, hlc, jumps };
}

describe("HybridLogicalClock: golden history (CockroachDB TestHLCClock)", () => {
  // A RECV step is now(); update(input); now(), as in the original, so the expected
  // values double as a check that this clock makes the same choices as CockroachDB's.
  const history: ReadonlyArray<{
    readonly note: string;
    readonly physicalMs: number;
    readonly input?: readonly [number, number];
    readonly expected: readonly [number, number];
  }> = [
    { note: "warm up", physicalMs: 5, expected: [5, 0] },
    { note: "physical advances", physicalMs: 6, expected: [6, 0] },
    { note: "remote ahead in logical", physicalMs: 10, input: [10, 5], expected: [10, 6] },
    { note: "physical clock jumps back", physicalMs: 7, expected: [10, 7] },
    { note: "walls coincide, local logical wins", physicalMs: 8, input: [10, 4], expected: [10, 9] },
    { note: "walls coincide, remote logical wins", physicalMs: 10, input: [10, 99], expected: [10, 100] },
    { note: "physical clock catches up and takes over", physicalMs: 11, input: [10, 31], expected: [11, 1] },
    { note: "send after catching up", physicalMs: 11, expected: [11, 2] },
  ];

  it("reproduces every step", () => {
    const physical = new ManualClock(1);
    const hlc = new HybridLogicalClock({ clock: physical });
    for (const step of history) {
      physical.set(step.physicalMs);
      let current: Timestamp;
      if (step.input === undefined) {
        current = hlc.now();
      } else {
        const previous = hlc.now();
        hlc.update(encode(...step.input));
        current = hlc.now();
        expect(current, step.note).not.toBe(previous);
      }
      expect(decode(current), step.note).toEqual({ wallMs: step.expected[0], logical: step.expected[1] });
    }
  });
});

describe("HybridLogicalClock: unit behaviour", () => {
  it("follows the physical clock when it moves forward", () => {
    const { physical, hlc } = newClock(1_000);
    expect(hlc.last()).toBe(ZERO);
    expect(hlc.now()).toBe(encode(1_000, 0));
    expect(hlc.now()).toBe(encode(1_000, 1));
    physical.advance(5);
    expect(hlc.now()).toBe(encode(1_005, 0));
    expect(hlc.last()).toBe(encode(1_005, 0));
    expect(hlc.physicalNow()).toBe(1_005);
  });

  it("never goes backwards when the physical clock does, and reports the jump", () => {
    const { physical, hlc, jumps } = newClock(1_000);
    hlc.now();
    physical.set(900);
    expect(hlc.now()).toBe(encode(1_000, 1));
    physical.set(950); // later than the previous reading: not a new jump
    expect(hlc.now()).toBe(encode(1_000, 2));
    physical.set(950); // stall
    expect(hlc.now()).toBe(encode(1_000, 3));
    physical.set(1_001);
    expect(hlc.now()).toBe(encode(1_001, 0));
    expect(jumps).toEqual([[1_000, 900]]);
  });

  it("reports a backward jump seen by update()", () => {
    const { physical, hlc, jumps } = newClock(1_000);
    hlc.now();
    physical.set(400);
    hlc.update(encode(300, 0));
    expect(jumps).toEqual([[1_000, 400]]);
  });

  it("stays monotonic when onBackwardJump throws", () => {
    const physical = new ManualClock(1_000);
    const hlc = new HybridLogicalClock({
      clock: physical,
      onBackwardJump: () => {
        throw new Error("metrics sink failed");
      },
    });
    const first = hlc.now();
    physical.set(10);
    expect(() => hlc.now()).toThrow("metrics sink failed");
    expect(hlc.now() > first).toBe(true);
  });

  it("update(r) makes the next now() greater than r", () => {
    const { hlc } = newClock(1_000);
    const remote = encode(1_400, 12);
    hlc.update(remote);
    expect(hlc.last()).toBe(remote);
    expect(hlc.now()).toBe(encode(1_400, 13));
  });

  it("ignores a remote older than its own state", () => {
    const { hlc } = newClock(1_000);
    const issued = hlc.now();
    hlc.update(encode(10, 3));
    expect(hlc.last()).toBe(issued);
  });

  it("accepts a remote exactly maxClockOffsetMs ahead and rejects one 1 ms further", () => {
    const { hlc } = newClock(10_000, 500);
    hlc.update(encode(10_500, 3));
    expect(hlc.last()).toBe(encode(10_500, 3));

    const { hlc: other } = newClock(10_000, 500);
    const before = other.now();
    let error: unknown;
    try {
      other.update(encode(10_501, 0));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ClockOffsetError);
    expect(error).toBeInstanceOf(Error);
    const offsetError = error as ClockOffsetError;
    expect(offsetError.name).toBe("ClockOffsetError");
    expect(offsetError.retryable).toBe(false);
    expect(offsetError.remote).toBe(encode(10_501, 0));
    expect(offsetError.remoteWallMs).toBe(10_501);
    expect(offsetError.localWallMs).toBe(10_000);
    expect(offsetError.maxOffsetMs).toBe(500);
    expect(offsetError.message).toContain("501 ms ahead");
    expect(offsetError.message).toContain("500 ms");
    expect(other.last()).toBe(before);
    expect(other.now()).toBe(encode(10_000, 1));
  });

  it("with maxClockOffsetMs 0 accepts only remotes not ahead of the physical clock", () => {
    const { hlc } = newClock(10_000, 0);
    hlc.update(encode(10_000, MAX_LOGICAL));
    expect(() => hlc.update(encode(10_001, 0))).toThrow(ClockOffsetError);
  });

  it("rejects an invalid remote with a RangeError and keeps its state", () => {
    const { hlc } = newClock(10_000);
    const before = hlc.now();
    expect(() => hlc.update(-1n)).toThrow(RangeError);
    expect(() => hlc.update(2n ** 64n)).toThrow(RangeError);
    expect(() => hlc.seed(-1n)).toThrow(RangeError);
    expect(hlc.last()).toBe(before);
  });

  it("seed() accepts a far-future log maximum and issues past it", () => {
    const { hlc } = newClock(10_000);
    const maxInLog = encode(10_000 + 86_400_000, 42);
    hlc.seed(maxInLog);
    expect(hlc.last()).toBe(maxInLog);
    expect(hlc.now()).toBe(encode(10_000 + 86_400_000, 43));
  });

  it("seed() never moves the clock back", () => {
    const { hlc } = newClock(10_000);
    const issued = hlc.now();
    hlc.seed(encode(5, 0));
    expect(hlc.last()).toBe(issued);
  });

  it("advances wall time by 1 ms when the logical counter would overflow", () => {
    const { hlc } = newClock(1_000);
    const issued: Timestamp[] = [];
    for (let i = 0; i <= MAX_LOGICAL; i++) issued.push(hlc.now());
    // One comparison for the whole run: 65,536 separate expect() calls are slow.
    expect(issued.every((ts, i) => ts === encode(1_000, i))).toBe(true);
    const previous = issued[MAX_LOGICAL]!;
    const next = hlc.now();
    expect(next > previous).toBe(true);
    expect(decode(next)).toEqual({ wallMs: 1_001, logical: 0 });
    expect(hlc.now()).toBe(encode(1_001, 1));
  });

  it("overflows past a remote that carries MAX_LOGICAL", () => {
    const { hlc } = newClock(1_000);
    hlc.update(encode(1_200, MAX_LOGICAL));
    expect(hlc.now()).toBe(encode(1_201, 0));
  });

  it("refuses to advance past the largest encodable wall time", () => {
    const { hlc } = newClock(1_000);
    hlc.seed(2n ** 64n - 1n);
    expect(() => hlc.now()).toThrow(RangeError);
    expect(hlc.last()).toBe(2n ** 64n - 1n);
  });

  it("floors fractional physical readings and rejects unusable ones", () => {
    const physical = new ManualClock(1_234.7);
    const hlc = new HybridLogicalClock({ clock: physical });
    expect(hlc.physicalNow()).toBe(1_234);
    expect(hlc.now()).toBe(encode(1_234, 0));
    for (const bad of [Number.NaN, -1, Number.POSITIVE_INFINITY, 2 ** 48]) {
      physical.set(bad);
      expect(() => hlc.now(), String(bad)).toThrow(RangeError);
      expect(hlc.last()).toBe(encode(1_234, 0));
    }
  });

  it("validates options once into a frozen config", () => {
    const hlc = new HybridLogicalClock();
    expect(hlc.maxClockOffsetMs).toBe(500);
    expect(hlc.config.clock).toBe(systemClock);
    expect(Object.isFrozen(hlc.config)).toBe(true);
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new HybridLogicalClock({ maxClockOffsetMs: bad }), String(bad)).toThrow(RangeError);
    }
  });

  it("reads the system clock by default", () => {
    const before = Date.now();
    const hlc = new HybridLogicalClock();
    const a = hlc.now();
    const b = hlc.now();
    const after = Date.now();
    expect(b > a).toBe(true);
    expect(decode(a).wallMs).toBeGreaterThanOrEqual(before);
    expect(decode(b).wallMs).toBeLessThanOrEqual(after);
  });
});

describe("HybridLogicalClock: properties", () => {
  it("now() is strictly monotonic, exceeds everything updated or seeded, and is >= the physical reading", () => {
    fc.assert(
      fc.property(startArb, maxOffsetArb, opsArb, (startMs, maxOffsetMs, ops) => {
        const { physical, hlc } = newClock(startMs, maxOffsetMs);
        // Everything issued, accepted or seeded so far: the next now() must exceed it.
        let floor = ZERO;
        for (const op of ops) {
          switch (op.kind) {
            case "move":
              physical.set(clamp(physical.ms + op.deltaMs));
              break;
            case "now": {
              const ts = hlc.now();
              expect(ts > floor).toBe(true);
              expect(decode(ts).wallMs).toBeGreaterThanOrEqual(physical.ms);
              floor = ts;
              break;
            }
            case "update": {
              const remote = remoteOf(op, physical.ms);
              if (isRejected(remote, physical.ms, maxOffsetMs)) {
                expect(() => hlc.update(remote)).toThrow(ClockOffsetError);
              } else {
                hlc.update(remote);
                floor = maxTimestamp(floor, remote);
              }
              break;
            }
            case "seed": {
              const maxInLog = encode(clamp(physical.ms + op.aheadMs), op.logical);
              hlc.seed(maxInLog);
              floor = maxTimestamp(floor, maxInLog);
              break;
            }
          }
          expect(hlc.last()).toBe(floor);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("update(r) then now() > r, from any state", () => {
    fc.assert(
      fc.property(startArb, opsArb, updateArb, (startMs, ops, op) => {
        const { physical, hlc } = newClock(startMs);
        applyAll(hlc, physical, ops, DEFAULT_MAX_CLOCK_OFFSET_MS);
        const remote = remoteOf(op, physical.ms);
        fc.pre(!isRejected(remote, physical.ms, DEFAULT_MAX_CLOCK_OFFSET_MS));
        hlc.update(remote);
        expect(hlc.now() > remote).toBe(true);
      }),
    );
  });

  it("a rejected update leaves the clock exactly as if it had never been called", () => {
    fc.assert(
      fc.property(startArb, maxOffsetArb, opsArb, (startMs, maxOffsetMs, ops) => {
        // Two clocks on one physical clock; only `a` sees the updates that get rejected.
        const physical = new ManualClock(startMs);
        const jumpsA: Array<[number, number]> = [];
        const jumpsB: Array<[number, number]> = [];
        const a = new HybridLogicalClock({
          clock: physical,
          maxClockOffsetMs: maxOffsetMs,
          onBackwardJump: (f, t) => jumpsA.push([f, t]),
        });
        const b = new HybridLogicalClock({
          clock: physical,
          maxClockOffsetMs: maxOffsetMs,
          onBackwardJump: (f, t) => jumpsB.push([f, t]),
        });
        for (const op of ops) {
          switch (op.kind) {
            case "move":
              physical.set(clamp(physical.ms + op.deltaMs));
              break;
            case "now":
              expect(a.now()).toBe(b.now());
              break;
            case "update": {
              const remote = remoteOf(op, physical.ms);
              let rejected = false;
              try {
                a.update(remote);
              } catch (e) {
                expect(e).toBeInstanceOf(ClockOffsetError);
                rejected = true;
              }
              expect(rejected).toBe(isRejected(remote, physical.ms, maxOffsetMs));
              if (!rejected) b.update(remote);
              break;
            }
            case "seed": {
              const maxInLog = encode(clamp(physical.ms + op.aheadMs), op.logical);
              a.seed(maxInLog);
              b.seed(maxInLog);
              break;
            }
          }
          expect(a.last()).toBe(b.last());
        }
        expect(a.now()).toBe(b.now());
        expect(jumpsA).toEqual(jumpsB);
      }),
    );
  });

  it("without seeds, wall time stays within maxClockOffsetMs of the largest physical reading", () => {
    // Short runs with small remote logicals cannot overflow the counter, which is the only
    // other way wall time moves ahead (seeded log values are trusted and unbounded).
    const boundedOps = fc.array(
      fc.oneof(
        nowArb,
        moveArb,
        fc
          .record({ aheadMs: aheadArb, logical: fc.integer({ min: 0, max: 1_000 }) })
          .map(({ aheadMs, logical }): Op => ({ kind: "update", aheadMs, logical })),
      ),
      { maxLength: 200 },
    );
    fc.assert(
      fc.property(startArb, maxOffsetArb, boundedOps, (startMs, maxOffsetMs, ops) => {
        const { physical, hlc } = newClock(startMs, maxOffsetMs);
        let maxPhysicalMs = 0;
        for (const op of ops) {
          if (op.kind === "move") {
            physical.set(clamp(physical.ms + op.deltaMs));
            continue;
          }
          maxPhysicalMs = Math.max(maxPhysicalMs, physical.ms);
          if (op.kind === "now") {
            expect(decode(hlc.now()).wallMs - maxPhysicalMs).toBeLessThanOrEqual(maxOffsetMs);
          } else if (op.kind === "update") {
            const remote = remoteOf(op, physical.ms);
            if (!isRejected(remote, physical.ms, maxOffsetMs)) hlc.update(remote);
          }
        }
      }),
    );
  });

  it("logical overflow advances wall time by exactly 1 ms", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: PHYSICAL_MAX_MS }),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 1_000 }),
        (wallMs, k, behindMs) => {
          const { physical, hlc } = newClock(Math.max(0, wallMs - behindMs));
          hlc.seed(encode(wallMs, MAX_LOGICAL - k));
          for (let i = 1; i <= k; i++) {
            expect(hlc.now()).toBe(encode(wallMs, MAX_LOGICAL - k + i));
          }
          expect(hlc.now()).toBe(encode(wallMs + 1, 0));
          physical.set(wallMs + 1);
          expect(hlc.now()).toBe(encode(wallMs + 1, 1));
        },
      ),
    );
  });

  it("restart: a clock seeded from the old clock's largest ts issues larger ones, even when its physical clock is behind", () => {
    fc.assert(
      fc.property(
        startArb,
        opsArb,
        fc.integer({ min: -10_000_000, max: 1_000 }),
        fc.integer({ min: 1, max: 20 }),
        (startMs, ops, restartDeltaMs, count) => {
          const { physical, hlc } = newClock(startMs);
          const issued = applyAll(hlc, physical, ops, DEFAULT_MAX_CLOCK_OFFSET_MS);
          fc.pre(issued.length > 0);
          const maxInLog = issued.reduce(maxTimestamp);

          const { hlc: restarted } = newClock(clamp(physical.ms + restartDeltaMs));
          restarted.seed(maxInLog);
          let previous = maxInLog;
          for (let i = 0; i < count; i++) {
            const ts = restarted.now();
            expect(ts > previous).toBe(true);
            previous = ts;
          }
        },
      ),
    );
  });
});

/** Runs ops against a clock, skipping rejected updates, and returns what now() issued. */
function applyAll(hlc: HybridLogicalClock, physical: ManualClock, ops: readonly Op[], maxOffsetMs: number): Timestamp[] {
  const issued: Timestamp[] = [];
  for (const op of ops) {
    switch (op.kind) {
      case "move":
        physical.set(clamp(physical.ms + op.deltaMs));
        break;
      case "now":
        issued.push(hlc.now());
        break;
      case "update": {
        const remote = remoteOf(op, physical.ms);
        if (!isRejected(remote, physical.ms, maxOffsetMs)) hlc.update(remote);
        break;
      }
      case "seed":
        hlc.seed(encode(clamp(physical.ms + op.aheadMs), op.logical));
        break;
    }
  }
  return issued;
}
