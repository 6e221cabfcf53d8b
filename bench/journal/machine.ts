// How busy the whole machine is (Linux /proc/stat), so that a run on a shared machine can
// wait for quiet before each scenario and report how much CPU other processes took
// during it. Everything degrades to "unknown" where /proc/stat does not exist.
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";

export interface CpuTimes {
  readonly busy: number;
  readonly total: number;
}

/** Aggregate CPU times since boot (jiffies), or undefined off Linux. */
export function readCpuTimes(): CpuTimes | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    if (f.length < 4 || f.some((x) => !Number.isFinite(x))) return undefined;
    // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** Cores busy between two readings (NaN when unknown). */
export function busyCores(a: CpuTimes | undefined, b: CpuTimes | undefined): number {
  if (!a || !b || b.total <= a.total) return Number.NaN;
  return ((b.busy - a.busy) / (b.total - a.total)) * availableParallelism();
}

/**
 * Waits until the machine has been quiet (under `thresholdCores` busy) for a 2 s sample,
 * for at most `maxSeconds`. Returns the seconds waited and the last sample.
 */
export async function waitForQuiet(maxSeconds: number, thresholdCores: number): Promise<{ waitedSeconds: number; busyCores: number }> {
  const t0 = performance.now();
  let last = Number.NaN;
  for (let i = 0; i < 1000; i++) {
    const a = readCpuTimes();
    await sleep(2000);
    last = busyCores(a, readCpuTimes());
    if (!(last >= thresholdCores)) break; // quiet, or unknown
    if (performance.now() - t0 >= maxSeconds * 1000) break;
  }
  return { waitedSeconds: (performance.now() - t0) / 1000, busyCores: last };
}
