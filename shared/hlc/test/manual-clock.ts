import type { PhysicalClock } from "../src/index.js";

/** A physical clock the test moves by hand, in any direction. */
export class ManualClock implements PhysicalClock {
  constructor(public ms: number) {}

  now(): number {
    return this.ms;
  }

  set(ms: number): void {
    this.ms = ms;
  }

  advance(deltaMs: number): void {
    this.ms += deltaMs;
  }
}
