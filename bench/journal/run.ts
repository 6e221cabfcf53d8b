// Journal benchmark: durable appends over the real RPC transport (gRPC over HTTP/2 with
// Connect's Node client) to a journal service running as a separate process on
// 127.0.0.1, one fresh process and data directory per scenario. Also measures the disk's
// fdatasync floor in the same directory, so the numbers can be read against it.
//
//   pnpm -s build && pnpm -s exec tsx bench/journal/run.ts [--seconds 5] [--help]
//
// Prints a table and writes bench/results/journal-<timestamp>.json. Goals are reported,
// never asserted.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { measureFsyncFloor, type FsyncFloor } from "./fsync.js";
import { busyCores, readCpuTimes, waitForQuiet, type CpuTimes } from "./machine.js";
import { journalMain, repoRoot, startJournalServer, type JournalServer } from "./server.js";
import { delta, fmt, table } from "./stats.js";
import { createClients, runClosedLoop, runPaced, VECTOR_BYTES, type ClosedLoopResult, type PacedResult, type WindowHooks } from "./workload.js";

const USAGE = `Usage: tsx bench/journal/run.ts [options]

  --seconds <n>         measured seconds per throughput scenario (default 5)
  --warmup <n>          warm-up seconds before each measurement (default 1)
  --paced-seconds <n>   measured seconds of the paced latency scenario (default 10)
  --paced-rate <n>      offered single-entry appends per second (default 1000)
  --paced-slots <n>     concurrent producers the paced appends are issued from (default 16)
  --partitions <n>      journal partitions; producers are spread round-robin (default 4)
  --connections <n>     HTTP/2 connections shared by the producers (default 1)
  --client-session-memory-mb <n>
                        maxSessionMemory of the client's HTTP/2 sessions (default 128; node's own
                        default of 10 rejects new streams once 10 MiB of requests are queued)
  --fsync-seconds <n>   seconds of each fdatasync floor loop (default 2)
  --only <list>         comma-separated scenario ids, e.g. p64-b100,paced (default all)
  --server-arg <flag>   extra journal flag, repeatable (e.g. --server-arg=--tick-interval-ms=0)
  --server-node-arg <f> extra node flag for the journal process, repeatable (e.g. --server-node-arg=--max-semi-space-size=64)
  --cpu-prof            run the journal with node --cpu-prof; profiles land in bench/results/
  --quiet-wait <s>      before each scenario, wait up to this long for the machine to be quiet (default 120; 0: don't)
  --quiet-threshold <c> "quiet" means fewer busy cores than this over 2 s (default 0.2)
  --out <dir>           results directory (default bench/results)
  --help                this text
`;

const GOAL_THROUGHPUT = 50_000;
const GOAL_P99_MS = 5;
/** The sampling interval of the journal's event-loop-lag metrics (shared/common createMetrics). */
const SERVER_LAG_RESOLUTION_MS = 10;

interface Options {
  seconds: number;
  warmup: number;
  pacedSeconds: number;
  pacedRate: number;
  pacedSlots: number;
  partitions: number;
  connections: number;
  clientSessionMemoryMb: number;
  fsyncSeconds: number;
  only: Set<string> | undefined;
  serverArgs: string[];
  serverNodeArgs: string[];
  cpuProf: boolean;
  quietWait: number;
  quietThreshold: number;
  out: string;
}

function num(v: string | undefined, dflt: number, name: string, min: number, max: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name}: expected a number in [${min}, ${max}], got ${v}`);
  return n;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: "string" },
      warmup: { type: "string" },
      "paced-seconds": { type: "string" },
      "paced-rate": { type: "string" },
      "paced-slots": { type: "string" },
      partitions: { type: "string" },
      connections: { type: "string" },
      "client-session-memory-mb": { type: "string" },
      "fsync-seconds": { type: "string" },
      only: { type: "string" },
      "server-arg": { type: "string", multiple: true },
      "server-node-arg": { type: "string", multiple: true },
      "cpu-prof": { type: "boolean" },
      "quiet-wait": { type: "string" },
      "quiet-threshold": { type: "string" },
      out: { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return undefined;
  }
  return {
    seconds: num(values.seconds, 5, "seconds", 0.5, 600),
    warmup: num(values.warmup, 1, "warmup", 0, 60),
    pacedSeconds: num(values["paced-seconds"], 10, "paced-seconds", 0.5, 600),
    pacedRate: num(values["paced-rate"], 1000, "paced-rate", 1, 100_000),
    pacedSlots: Math.round(num(values["paced-slots"], 16, "paced-slots", 1, 1024)),
    partitions: Math.round(num(values.partitions, 4, "partitions", 1, 64)),
    connections: Math.round(num(values.connections, 1, "connections", 1, 64)),
    clientSessionMemoryMb: num(values["client-session-memory-mb"], 128, "client-session-memory-mb", 1, 4096),
    fsyncSeconds: num(values["fsync-seconds"], 2, "fsync-seconds", 0.2, 60),
    only: values.only ? new Set(values.only.split(",").map((s) => s.trim())) : undefined,
    serverArgs: (values["server-arg"] ?? []).flatMap((a) => a.split("=")),
    serverNodeArgs: values["server-node-arg"] ?? [],
    cpuProf: values["cpu-prof"] ?? false,
    quietWait: num(values["quiet-wait"], 120, "quiet-wait", 0, 3600),
    quietThreshold: num(values["quiet-threshold"], 0.2, "quiet-threshold", 0.01, 64),
    out: values.out ?? join(repoRoot, "bench", "results"),
  };
}

/** What the journal's /metrics say happened inside the measurement window. */
interface ServerWindow {
  readonly seconds: number;
  readonly fsyncs: number;
  readonly fsyncsPerSec: number;
  /** Entries made durable (DATA plus TICKs), from vecraft_journal_group_commit_entries. */
  readonly committedEntries: number;
  /** The group-commit ratio: committed entries per fdatasync (_sum / _count deltas). */
  readonly entriesPerFsync: number;
  /** DATA entries whose Append returned (vecraft_journal_appended_entries_total); the rest of committedEntries are ticks of idle partitions. */
  readonly dataEntries: number;
  readonly meanCommitBytes: number;
  readonly meanFsyncMs: number;
  /** Server-side Append time (handler entry to durable), mean. */
  readonly meanServerAppendMs: number;
  readonly cpuCores: number;
  /** Busy cores of the whole machine over the window (all processes, from /proc/stat). */
  readonly machineBusyCores: number;
  /** Event-loop delay beyond the 10 ms sampling timer, p99 and max over the window. */
  readonly eventLoopLagP99Ms: number;
  readonly eventLoopLagMaxMs: number;
}

function windowHooks(server: JournalServer): { hooks: WindowHooks; result: () => ServerWindow } {
  let m0 = new Map<string, number>();
  let m1 = new Map<string, number>();
  let t0 = 0;
  let t1 = 0;
  let c0: CpuTimes | undefined;
  let c1: CpuTimes | undefined;
  return {
    hooks: {
      async atStart() {
        t0 = performance.now();
        c0 = readCpuTimes();
        m0 = await server.metrics();
      },
      async atEnd() {
        t1 = performance.now();
        c1 = readCpuTimes();
        m1 = await server.metrics();
      },
    },
    result() {
      const seconds = (t1 - t0) / 1000;
      const d = (name: string): number => delta(m0, m1, name);
      const fsyncs = d("vecraft_journal_group_commit_entries_count");
      const committed = d("vecraft_journal_group_commit_entries_sum");
      const dataEntries = d("vecraft_journal_appended_entries_total");
      return {
        seconds,
        fsyncs,
        fsyncsPerSec: fsyncs / seconds,
        committedEntries: committed,
        entriesPerFsync: committed / fsyncs,
        dataEntries,
        meanCommitBytes: d("vecraft_journal_group_commit_bytes_sum") / fsyncs,
        meanFsyncMs: (d("vecraft_journal_fsync_duration_seconds_sum") / d("vecraft_journal_fsync_duration_seconds_count")) * 1000,
        meanServerAppendMs: (d("vecraft_journal_append_duration_seconds_sum") / d("vecraft_journal_append_duration_seconds_count")) * 1000,
        cpuCores: d("process_cpu_seconds_total") / seconds,
        machineBusyCores: busyCores(c0, c1),
        // prom-client samples the loop with a 10 ms timer and resets at each scrape: the
        // delays it records include that interval, which is subtracted here.
        eventLoopLagP99Ms: Math.max(0, (m1.get("nodejs_eventloop_lag_p99_seconds") ?? Number.NaN) * 1000 - SERVER_LAG_RESOLUTION_MS),
        eventLoopLagMaxMs: Math.max(0, (m1.get("nodejs_eventloop_lag_max_seconds") ?? Number.NaN) * 1000 - SERVER_LAG_RESOLUTION_MS),
      };
    },
  };
}

interface ScenarioReport {
  readonly id: string;
  readonly description: string;
  readonly producers: number;
  readonly batch: number;
  readonly partitionsUsed: number;
  readonly client: ClosedLoopResult;
  readonly server: ServerWindow;
  readonly serverExit: { code: number | null; signal: NodeJS.Signals | null };
  readonly profiles: string[];
  /** Waiting for a quiet machine before the scenario, and its busy cores then. */
  readonly quietBefore: { waitedSeconds: number; busyCores: number };
}

interface PacedReport {
  readonly id: "paced";
  readonly client: PacedResult;
  readonly server: ServerWindow;
  readonly serverExit: { code: number | null; signal: NodeJS.Signals | null };
  readonly profiles: string[];
  readonly quietBefore: { waitedSeconds: number; busyCores: number };
}

function mountOf(path: string): string {
  try {
    let best = { point: "", text: "unknown" };
    for (const line of readFileSync("/proc/mounts", "utf8").split("\n")) {
      const [dev, point, type, mountOpts] = line.split(" ");
      if (!dev || !point || !type) continue;
      if ((path === point || path.startsWith(point.endsWith("/") ? point : `${point}/`)) && point.length >= best.point.length) {
        best = { point, text: `${dev} on ${point} (${type}, ${mountOpts ?? ""})` };
      }
    }
    return best.text;
  } catch {
    return "unknown";
  }
}

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, "-");
}

async function withServer<T>(
  opts: Options,
  runDir: string,
  id: string,
  profileRoot: string | undefined,
  body: (server: JournalServer) => Promise<T>,
): Promise<{ value: T; exit: { code: number | null; signal: NodeJS.Signals | null }; profiles: string[]; quiet: { waitedSeconds: number; busyCores: number } }> {
  let quiet = { waitedSeconds: 0, busyCores: Number.NaN };
  if (opts.quietWait > 0) {
    quiet = await waitForQuiet(opts.quietWait, opts.quietThreshold);
    if (quiet.busyCores >= opts.quietThreshold) {
      process.stderr.write(`  the machine is still busy (${fmt(quiet.busyCores, 2)} cores) after ${fmt(quiet.waitedSeconds)} s; running ${id} anyway\n`);
    } else if (quiet.waitedSeconds > 3) {
      process.stderr.write(`  waited ${fmt(quiet.waitedSeconds)} s for the machine to be quiet\n`);
    }
  }
  const dataDir = join(runDir, id);
  mkdirSync(dataDir, { recursive: true });
  const profileDir = profileRoot ? join(profileRoot, id) : undefined;
  const server = await startJournalServer({
    dataDir,
    partitions: opts.partitions,
    extraArgs: opts.serverArgs,
    nodeArgs: [...opts.serverNodeArgs, ...(profileDir ? ["--cpu-prof", "--cpu-prof-dir", profileDir] : [])],
  });
  let value: T;
  try {
    value = await body(server);
  } finally {
    const exit = await server.stop();
    if (exit.code !== 0) process.stderr.write(`journal for ${id} exited with code ${exit.code} signal ${exit.signal}; stderr tail:\n${server.outputTail().slice(-4000)}\n`);
    rmSync(dataDir, { recursive: true, force: true });
  }
  const exit = await server.stop();
  const profiles = profileDir && existsSync(profileDir) ? readdirSync(profileDir).map((f) => relative(repoRoot, join(profileDir, f))) : [];
  return { value, exit, profiles, quiet };
}

function printFloor(f: FsyncFloor): string {
  const what = `${f.mode} ${f.blockBytes >= 1024 ? `${f.blockBytes / 1024} KiB` : `${f.blockBytes} B`}`;
  return (
    `${what.padEnd(16)} ${fmt(f.syncsPerSec)} syncs/s (${fmt(f.mibPerSec, 1)} MiB/s)  p50 ${fmt(f.latency.p50Ms, 3)} ms  p99 ${fmt(f.latency.p99Ms, 3)} ms` +
    `  (${fmt(f.syncs)} syncs in ${fmt(f.seconds, 1)} s)`
  );
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (!opts) return;
  if (!existsSync(journalMain)) throw new Error(`${journalMain} is missing: run \`pnpm -s build\` first`);
  const startedAt = new Date().toISOString();
  const runStamp = stamp();
  mkdirSync(opts.out, { recursive: true });
  const runDir = mkdtempSync(join(tmpdir(), "vecraft-bench-journal-"));
  const cleanup = (): void => rmSync(runDir, { recursive: true, force: true });
  process.once("exit", cleanup);
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => process.exit(130));
  const profileRoot = opts.cpuProf ? join(opts.out, `profiles-${runStamp}`) : undefined;
  const wanted = (id: string): boolean => !opts.only || opts.only.has(id);

  const machine = {
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel: `${process.platform} ${release()}`,
    dataDir: runDir,
    filesystem: mountOf(runDir),
    /** 1-minute load average before and after: others' work on a shared machine skews everything. */
    loadAvgStart: loadavg()[0] ?? 0,
    loadAvgEnd: 0,
  };
  const log = (s: string): boolean => process.stderr.write(`${s}\n`);
  log(`machine: ${machine.nproc} cpus (${machine.cpuModel}), ${machine.memoryGiB} GiB, node ${machine.node}, data in ${runDir} [${machine.filesystem}]`);

  if (opts.quietWait > 0) {
    const q = await waitForQuiet(opts.quietWait, opts.quietThreshold);
    if (q.busyCores >= opts.quietThreshold) log(`  the machine is still busy (${fmt(q.busyCores, 2)} cores) after ${fmt(q.waitedSeconds)} s; measuring anyway`);
  }
  log(`fdatasync floor (write + fdatasync, ${opts.fsyncSeconds} s each)...`);
  const floors = [
    measureFsyncFloor(runDir, opts.fsyncSeconds, "append"),
    measureFsyncFloor(runDir, opts.fsyncSeconds, "overwrite"),
    measureFsyncFloor(runDir, opts.fsyncSeconds / 2, "append", 256 * 1024),
  ];
  for (const f of floors) log(`  ${printFloor(f)}`);

  const scenarios: ScenarioReport[] = [];
  for (const producers of [1, 64]) {
    for (const batch of [1, 100, 1000]) {
      const id = `p${producers}-b${batch}`;
      if (!wanted(id)) continue;
      const partitionsUsed = Math.min(producers, opts.partitions);
      const description = `${producers} producer${producers > 1 ? "s" : ""} x ${batch} entr${batch > 1 ? "ies" : "y"}/append`;
      log(`${id}: ${description}, >= ${opts.warmup} s warm-up + ${opts.seconds} s...`);
      const run = await withServer(opts, runDir, id, profileRoot, async (server) => {
        const w = windowHooks(server);
        const client = await runClosedLoop({
          clients: createClients(server.url, opts.connections, opts.clientSessionMemoryMb),
          producers,
          batch,
          partitions: opts.partitions,
          warmupSec: opts.warmup,
          seconds: opts.seconds,
          hooks: w.hooks,
        });
        return { client, server: w.result() };
      });
      const r: ScenarioReport = { id, description, producers, batch, partitionsUsed, ...run.value, serverExit: run.exit, profiles: run.profiles, quietBefore: run.quiet };
      scenarios.push(r);
      log(
        `  (warm-up ${fmt(r.client.warmupSeconds, 1)} s) ${fmt(r.client.entriesPerSec)} entries/s, ${fmt(r.client.appendsPerSec)} appends/s, p50 ${fmt(r.client.latency.p50Ms, 2)} ms, p99 ${fmt(r.client.latency.p99Ms, 2)} ms, ` +
          `${fmt(r.server.entriesPerFsync, 1)} entries/fsync, server cpu ${fmt(r.server.cpuCores, 2)}, client cpu ${fmt(r.client.clientCpuCores, 2)}, errors ${r.client.errors.count}`,
      );
    }
  }

  let paced: PacedReport | undefined;
  if (wanted("paced")) {
    log(`paced: single-entry appends at ${opts.pacedRate}/s from ${opts.pacedSlots} slots, ${opts.warmup} s warm-up + ${opts.pacedSeconds} s...`);
    const run = await withServer(opts, runDir, "paced", profileRoot, async (server) => {
      const w = windowHooks(server);
      const client = await runPaced({
        clients: createClients(server.url, opts.connections, opts.clientSessionMemoryMb),
        rate: opts.pacedRate,
        slots: opts.pacedSlots,
        partitions: opts.partitions,
        warmupSec: opts.warmup,
        seconds: opts.pacedSeconds,
        hooks: w.hooks,
      });
      return { client, server: w.result() };
    });
    paced = { id: "paced", ...run.value, serverExit: run.exit, profiles: run.profiles, quietBefore: run.quiet };
    const l = paced.client.latency;
    log(`  ${fmt(paced.client.achievedRate)} acks/s, p50 ${fmt(l.p50Ms, 2)} ms, p99 ${fmt(l.p99Ms, 2)} ms, p99.9 ${fmt(l.p999Ms, 2)} ms, max ${fmt(l.maxMs, 2)} ms`);
  }

  // ---- report ----
  const rows = scenarios.map((s) => [
    s.id,
    String(s.producers),
    String(s.batch),
    fmt(s.client.entriesPerSec),
    fmt(s.client.appendsPerSec),
    fmt(s.client.latency.p50Ms, 2),
    fmt(s.client.latency.p99Ms, 2),
    fmt(s.server.entriesPerFsync, 1),
    fmt(s.server.fsyncsPerSec),
    fmt(s.server.cpuCores, 2),
    fmt(s.client.clientCpuCores, 2),
    fmt(Math.max(0, s.server.machineBusyCores - s.server.cpuCores - s.client.clientCpuCores), 2),
    String(s.client.errors.count),
  ]);
  const out: string[] = [];
  out.push("");
  out.push(`Journal: durable 1 KiB appends over gRPC to a separate journal process (${opts.partitions} partitions, producers round-robin over them, ${opts.connections} HTTP/2 connection(s))`);
  floors.forEach((f, i) => out.push(`${i === 0 ? "fdatasync floor:" : "                "} ${printFloor(f)}`));
  out.push("");
  out.push(
    table(
      ["scenario", "producers", "batch", "entries/s", "appends/s", "p50 ms", "p99 ms", "entries/fsync", "fsyncs/s", "server cpu", "client cpu", "other cpu", "errors"],
      rows,
    ),
  );
  if (paced) {
    const c = paced.client;
    out.push("");
    out.push(
      `paced: ${fmt(c.targetRate)} single-entry appends/s offered from ${c.slots} slots for ${fmt(c.windowSeconds, 0)} s: ${fmt(c.acked)} of ${fmt(c.scheduled)} acked, ` +
        `${fmt(c.achievedRate)} acks/s inside the window, last ack ${fmt(c.drainMs)} ms after it; ${fmt(c.waitedForSlot)} appends waited for a free slot; ${c.errors.count} errors`,
    );
    out.push(
      table(
        ["latency", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "entries/fsync", "fsyncs/s", "server cpu", "client cpu", "other cpu"],
        [
          [
            "send to ack",
            fmt(c.latency.p50Ms, 2),
            fmt(c.latency.p99Ms, 2),
            fmt(c.latency.p999Ms, 2),
            fmt(c.latency.maxMs, 2),
            fmt(paced.server.entriesPerFsync, 2),
            fmt(paced.server.fsyncsPerSec),
            fmt(paced.server.cpuCores, 2),
            fmt(c.clientCpuCores, 2),
            fmt(Math.max(0, paced.server.machineBusyCores - paced.server.cpuCores - c.clientCpuCores), 2),
          ],
          ["schedule to ack", fmt(c.latencyFromSchedule.p50Ms, 2), fmt(c.latencyFromSchedule.p99Ms, 2), fmt(c.latencyFromSchedule.p999Ms, 2), fmt(c.latencyFromSchedule.maxMs, 2), "", "", "", "", ""],
        ],
      ),
    );
  }

  const goals: { goal: string; target: string; measured: string; met: boolean | null; detail: string }[] = [];
  const g1 = scenarios.find((s) => s.id === "p64-b100");
  goals.push(
    g1
      ? {
          goal: "throughput: 64 producers, batches of 100, 1 KiB entries",
          target: `>= ${fmt(GOAL_THROUGHPUT)} durable entries/s`,
          measured: `${fmt(g1.client.entriesPerSec)} entries/s`,
          met: g1.client.entriesPerSec >= GOAL_THROUGHPUT,
          detail:
            `${fmt((g1.client.entriesPerSec / GOAL_THROUGHPUT) * 100, 0)}% of the goal, ` +
            (g1.client.entriesPerSec >= GOAL_THROUGHPUT ? `${fmt(g1.client.entriesPerSec - GOAL_THROUGHPUT)} entries/s above it` : `${fmt(GOAL_THROUGHPUT - g1.client.entriesPerSec)} entries/s short`),
        }
      : { goal: "throughput: 64 producers, batches of 100, 1 KiB entries", target: `>= ${fmt(GOAL_THROUGHPUT)} entries/s`, measured: "not run", met: null, detail: "" },
  );
  if (paced) {
    const c = paced.client;
    const sustained = c.waitedForSlot <= c.scheduled * 0.01 && c.achievedRate >= c.targetRate * 0.98;
    goals.push({
      goal: `latency: single-entry appends at ${fmt(c.targetRate)}/s`,
      target: `p99 < ${GOAL_P99_MS} ms`,
      measured: `p99 ${fmt(c.latency.p99Ms, 2)} ms send-to-ack (${fmt(c.latencyFromSchedule.p99Ms, 2)} ms from the scheduled time)`,
      met: c.latency.p99Ms < GOAL_P99_MS && sustained,
      detail:
        `${fmt(c.latency.p99Ms / GOAL_P99_MS, 1)}x the budget` +
        (sustained ? "" : `; the offered rate was not sustained (${fmt(c.achievedRate)} acks/s in the window, ${fmt(c.waitedForSlot)} appends queued for a slot)`),
    });
  } else {
    goals.push({ goal: "latency: single-entry appends at 1,000/s", target: `p99 < ${GOAL_P99_MS} ms`, measured: "not run", met: null, detail: "" });
  }
  out.push("");
  out.push("goals (reported, not asserted):");
  for (const g of goals) out.push(`  ${g.met === null ? "SKIPPED" : g.met ? "MET    " : "NOT MET"}  ${g.goal}: ${g.target}; measured ${g.measured}${g.detail ? `; ${g.detail}` : ""}`);

  machine.loadAvgEnd = loadavg()[0] ?? 0;
  out.push(`1-minute load average: ${fmt(machine.loadAvgStart, 2)} at the start, ${fmt(machine.loadAvgEnd, 2)} at the end`);
  const file = join(opts.out, `journal-${runStamp}.json`);
  const report = {
    benchmark: "journal",
    startedAt,
    finishedAt: new Date().toISOString(),
    command: `tsx bench/journal/run.ts ${process.argv.slice(2).join(" ")}`.trim(),
    machine,
    config: {
      seconds: opts.seconds,
      warmupSeconds: opts.warmup,
      partitions: opts.partitions,
      connections: opts.connections,
      clientSessionMemoryMb: opts.clientSessionMemoryMb,
      entry: `DATA entry, one RecordWrite with a ${VECTOR_BYTES}-byte vector_f32 and small metadata_json`,
      producerPlacement: "producer i appends to partition i mod partitions",
      serverArgs: opts.serverArgs,
      serverNodeArgs: opts.serverNodeArgs,
      cpuProf: opts.cpuProf,
      quietWait: { maxSeconds: opts.quietWait, thresholdCores: opts.quietThreshold },
      paced: { rate: opts.pacedRate, slots: opts.pacedSlots, seconds: opts.pacedSeconds },
    },
    fsyncFloor: floors,
    scenarios,
    paced,
    goals,
  };
  writeFileSync(file, JSON.stringify(report, null, 2) + "\n");
  out.push("");
  out.push(`results: ${relative(process.cwd(), file)}`);
  if (profileRoot) out.push(`cpu profiles: ${relative(process.cwd(), profileRoot)} (summarize with: tsx bench/journal/profile-summary.ts <file.cpuprofile>)`);
  process.stdout.write(out.join("\n") + "\n");
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (e: unknown) => {
    process.stderr.write(`journal benchmark failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
