// Closed-loop query runners: `concurrency` clients each take the next query, send it, and
// wait for the answer before taking another, until every query was asked once. Each
// answer's latency and recall are recorded; QPS is answered queries over wall time.
import { LatencyRecorder, type LatencySummary } from "../journal/stats.js";
import { busyCores, readCpuTimes } from "../journal/machine.js";

export interface QueryCell {
  readonly concurrency: number;
  readonly queries: number;
  readonly seconds: number;
  readonly qps: number;
  /** Mean recall@k over the answered queries. */
  readonly recall: number;
  readonly latency: LatencySummary;
  readonly errors: number;
  readonly firstError?: string;
  /** CPU of this (benchmark) process during the cell, in cores. */
  readonly clientCpuCores: number;
  /** Busy cores of the whole machine during the cell (every process), NaN when unknown. */
  readonly machineBusyCores: number;
}

export interface RunOptions {
  readonly queries: number;
  readonly concurrency: number;
  /** Queries asked (and not recorded) before the measured pass, with the same concurrency. */
  readonly warmup: number;
  /** Gives up on the pass after this long (the cell then covers fewer queries). */
  readonly maxSeconds: number;
}

/** `search(q)` answers query number `q` with ids, best first; `recall(q, ids)` scores them. */
export async function runAsync(opts: RunOptions, search: (q: number) => Promise<number[]>, recall: (q: number, ids: number[]) => number): Promise<QueryCell> {
  const warm = Math.min(opts.warmup, opts.queries);
  let next = 0;
  const warmLoop = async (): Promise<void> => {
    while (next < warm) {
      const q = next++;
      try {
        await search(q);
      } catch {
        // Warm-up failures show up again in the measured pass.
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, warmLoop));

  const rec = new LatencyRecorder(opts.queries);
  // Recall is scored after the pass, so that its cost is not in the QPS.
  const answers: number[][] = [];
  let errors = 0;
  let firstError: string | undefined;
  next = 0;
  const cpu0 = process.cpuUsage();
  const m0 = readCpuTimes();
  const t0 = performance.now();
  const deadline = t0 + opts.maxSeconds * 1000;
  const loop = async (): Promise<void> => {
    while (next < opts.queries && performance.now() < deadline) {
      const q = next++;
      const s = performance.now();
      try {
        const ids = await search(q);
        rec.add(performance.now() - s);
        answers[q] = ids;
      } catch (e) {
        errors++;
        firstError ??= e instanceof Error ? e.message : String(e);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, loop));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const machine = busyCores(m0, readCpuTimes());
  const { answered, meanRecall } = score(answers, recall);
  return {
    concurrency: opts.concurrency,
    queries: answered,
    seconds,
    qps: answered / seconds,
    recall: meanRecall,
    latency: rec.summary(),
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
    clientCpuCores: (cpu.user + cpu.system) / 1e6 / seconds,
    machineBusyCores: machine,
  };
}

/** The same for a synchronous, in-process search (one caller, so concurrency 1). */
export function runSync(opts: Omit<RunOptions, "concurrency">, search: (q: number) => number[], recall: (q: number, ids: number[]) => number): QueryCell {
  for (let q = 0; q < Math.min(opts.warmup, opts.queries); q++) search(q);
  const rec = new LatencyRecorder(opts.queries);
  const answers: number[][] = [];
  const cpu0 = process.cpuUsage();
  const m0 = readCpuTimes();
  const t0 = performance.now();
  const deadline = t0 + opts.maxSeconds * 1000;
  for (let q = 0; q < opts.queries && performance.now() < deadline; q++) {
    const s = performance.now();
    answers[q] = search(q);
    rec.add(performance.now() - s);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const machine = busyCores(m0, readCpuTimes());
  const { answered, meanRecall } = score(answers, recall);
  return {
    concurrency: 1,
    queries: answered,
    seconds,
    qps: answered / seconds,
    recall: meanRecall,
    latency: rec.summary(),
    errors: 0,
    clientCpuCores: (cpu.user + cpu.system) / 1e6 / seconds,
    machineBusyCores: machine,
  };
}

function score(answers: readonly (number[] | undefined)[], recall: (q: number, ids: number[]) => number): { answered: number; meanRecall: number } {
  let answered = 0;
  let sum = 0;
  answers.forEach((ids, q) => {
    if (!ids) return;
    answered++;
    sum += recall(q, ids);
  });
  return { answered, meanRecall: answered > 0 ? sum / answered : Number.NaN };
}
