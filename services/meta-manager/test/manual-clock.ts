import type { Clock } from "../src/index.js";

/** A clock the test moves by hand; timers due by the new time fire, in order, during advance(). */
export class ManualClock implements Clock {
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;

  constructor(public ms = 1_700_000_000_000) {}

  now(): number {
    return this.ms;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const id = this.nextId++;
    this.timers.set(id, { at: this.ms + Math.max(0, ms), fn });
    return () => this.timers.delete(id);
  }

  get pendingTimers(): number {
    return this.timers.size;
  }

  advance(deltaMs: number): void {
    const target = this.ms + deltaMs;
    for (;;) {
      let due: [number, { at: number; fn: () => void }] | undefined;
      for (const t of this.timers) if (t[1].at <= target && (due === undefined || t[1].at < due[1].at)) due = t;
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.ms = Math.max(this.ms, due[1].at);
      due[1].fn();
    }
    this.ms = target;
  }
}
