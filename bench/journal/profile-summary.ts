// Summarizes a V8 .cpuprofile (from `run.ts --cpu-prof`): self time by area of the code
// (journal, Connect, protobuf, HTTP/2, fs, GC, idle...), the hottest functions by self
// time, and the heaviest functions by inclusive time (time with them on the stack).
//
//   pnpm -s exec tsx bench/journal/profile-summary.ts <file.cpuprofile>... [--top 30] [--skip-ms 1500]
//
// --skip-ms leaves out the first milliseconds of the profile (process start and warm-up).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { fmt, table } from "./stats.js";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function isProfile(v: unknown): v is CpuProfile {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return Array.isArray(o.nodes) && Array.isArray(o.samples) && Array.isArray(o.timeDeltas);
}

/** The area a frame belongs to, from its script URL. */
export function areaOf(f: CallFrame): string {
  const u = f.url;
  if (u === "") {
    if (f.functionName === "(garbage collector)") return "gc";
    if (f.functionName === "(idle)") return "idle";
    if (f.functionName === "(program)") return "program (native, untracked)";
    return `native: ${f.functionName || "(anonymous)"}`;
  }
  if (u.includes("/journal-service/")) {
    if (u.includes("/audit/")) return "journal: audit index";
    if (u.includes("/log/")) return "journal: log (codec, segments)";
    return "journal: service/partition";
  }
  if (u.includes("/shared/hlc/")) return "vecraft: hlc";
  if (u.includes("/shared/common/")) return "vecraft: common (server, metrics)";
  if (u.includes("/shared/rpc/")) return "vecraft: rpc (generated)";
  if (u.includes("@connectrpc")) return "connect";
  if (u.includes("@bufbuild")) return "protobuf-es";
  if (u.includes("prom-client")) return "prom-client";
  if (u.includes("better-sqlite3")) return "better-sqlite3";
  if (u.includes("crc32")) return "crc32";
  if (u.startsWith("node:internal/http2") || u.startsWith("node:http2")) return "node: http2";
  if (u.startsWith("node:internal/fs") || u.startsWith("node:fs")) return "node: fs";
  if (u.startsWith("node:internal/streams") || u.startsWith("node:stream")) return "node: streams";
  if (u.startsWith("node:internal/timers") || u.startsWith("node:timers")) return "node: timers";
  if (u.startsWith("node:")) return "node: other";
  return "other";
}

function main(): void {
  const { values, positionals } = parseArgs({ options: { top: { type: "string" }, "skip-ms": { type: "string" } }, allowPositionals: true });
  const top = Number(values.top ?? 25);
  const skipUs = Number(values["skip-ms"] ?? 0) * 1000;
  if (positionals.length === 0) {
    process.stderr.write("usage: tsx bench/journal/profile-summary.ts <file.cpuprofile>... [--top N]\n");
    process.exitCode = 2;
    return;
  }
  for (const path of positionals) {
    const parsed: unknown = JSON.parse(readFileSync(path, "utf8"));
    if (!isProfile(parsed)) throw new Error(`${path} is not a V8 CPU profile`);
    const byId = new Map(parsed.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of parsed.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const selfUs = new Map<number, number>();
    let clock = 0;
    for (let i = 0; i < parsed.samples.length; i++) {
      const dt = parsed.timeDeltas[i] ?? 0;
      clock += dt;
      if (clock < skipUs) continue;
      const id = parsed.samples[i]!;
      selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    }
    let total = 0;
    const areas = new Map<string, number>();
    const fns = new Map<string, number>();
    const inclusive = new Map<string, number>();
    const keyOf = (f: CallFrame): string => {
      const file = f.url.replace(/^.*\/(node_modules|services|shared)\//, "$1/");
      return `${f.functionName || "(anonymous)"} ${file}${f.url ? `:${f.lineNumber + 1}` : ""}`;
    };
    for (const [id, us] of selfUs) {
      const n = byId.get(id);
      if (!n) continue;
      total += us;
      const area = areaOf(n.callFrame);
      areas.set(area, (areas.get(area) ?? 0) + us);
      const key = keyOf(n.callFrame);
      fns.set(key, (fns.get(key) ?? 0) + us);
      if (area === "idle") continue;
      // Inclusive: every distinct function on this sample's stack (bounded by the tree depth).
      const seen = new Set<string>();
      for (let cur: number | undefined = id, depth = 0; cur !== undefined && depth < 10_000; cur = parent.get(cur), depth++) {
        const frame = byId.get(cur)?.callFrame;
        if (!frame || frame.functionName === "(root)") continue;
        const k = keyOf(frame);
        if (seen.has(k)) continue;
        seen.add(k);
        inclusive.set(k, (inclusive.get(k) ?? 0) + us);
      }
    }
    const busy = total - (areas.get("idle") ?? 0);
    const pct = (us: number): string => `${fmt((us / total) * 100, 1)}%`;
    const pctBusy = (us: number): string => `${fmt((us / busy) * 100, 1)}%`;
    process.stdout.write(`\n${path}: ${fmt(total / 1e6, 2)} s sampled, ${fmt(busy / 1e6, 2)} s busy (${pct(busy)})\n\n`);
    const areaRows = [...areas.entries()].sort((a, b) => b[1] - a[1]).map(([a, us]) => [a, fmt(us / 1000), pct(us), a === "idle" ? "" : pctBusy(us)]);
    process.stdout.write(table(["area (self time)", "ms", "% total", "% busy"], areaRows) + "\n\n");
    const fnRows = [...fns.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([f, us]) => [f.length > 110 ? `${f.slice(0, 107)}...` : f, fmt(us / 1000), pctBusy(us)]);
    process.stdout.write(table(["function (self time)", "ms", "% busy"], fnRows) + "\n\n");
    const incRows = [...inclusive.entries()]
      .filter(([f]) => !f.startsWith("(program)") && !f.startsWith("(garbage collector)"))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([f, us]) => [f.length > 110 ? `${f.slice(0, 107)}...` : f, fmt(us / 1000), pctBusy(us)]);
    process.stdout.write(table(["function (inclusive time)", "ms", "% busy"], incRows) + "\n");
  }
}

main();
