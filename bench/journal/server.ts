// The journal service as a separate process, the way it runs in production: spawned from
// its built entry point on 127.0.0.1 with a fresh data directory, reached over its real
// port, stopped with SIGTERM (SIGKILL if it does not exit in time).
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { parsePrometheus } from "./stats.js";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const journalMain = join(repoRoot, "services", "journal-service", "dist", "main.js");

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 20_000;
const STDERR_KEEP = 64 * 1024;

export interface ServerOptions {
  readonly dataDir: string;
  readonly partitions: number;
  /** Extra journal flags, e.g. ["--tick-interval-ms", "0"]. */
  readonly extraArgs: readonly string[];
  /** Extra node flags, e.g. ["--cpu-prof", "--cpu-prof-dir", dir]. */
  readonly nodeArgs: readonly string[];
}

export interface JournalServer {
  readonly url: string;
  readonly pid: number;
  readonly args: readonly string[];
  /** Scrapes /metrics (HTTP/1.1 on the same port). */
  metrics(): Promise<Map<string, number>>;
  /** The last 64 KiB the process wrote to stderr (its JSON logs). */
  stderrTail(): string;
  /** SIGTERM, wait for a clean exit (so that --cpu-prof profiles get written), SIGKILL after 20 s. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Children still running, killed if the benchmark itself exits early. */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

export async function startJournalServer(opts: ServerOptions): Promise<JournalServer> {
  const args = [
    ...opts.nodeArgs,
    journalMain,
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--data-dir",
    opts.dataDir,
    "--partitions",
    String(opts.partitions),
    ...opts.extraArgs,
  ];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr = (stderr + d).slice(-STDERR_KEEP);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`journal did not print its URL within ${START_TIMEOUT_MS} ms; stderr:\n${stderr}`)), START_TIMEOUT_MS);
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        const m = /Vecraft journal serving on (http:\/\/[^\s]+)/.exec(out);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`journal exited (code ${code}, signal ${signal}) before serving; stderr:\n${stderr}`));
      });
    });
    const host = new URL(url).hostname;
    if (host !== "127.0.0.1") throw new Error(`journal serves on ${url}, expected 127.0.0.1`);
  } catch (e) {
    child.kill("SIGKILL");
    await exited;
    throw e;
  }
  let stopping: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  return {
    url,
    pid: child.pid ?? -1,
    args,
    async metrics() {
      const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`GET /metrics: HTTP ${res.status}`);
      return parsePrometheus(await res.text());
    },
    stderrTail: () => stderr,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return exited;
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
        try {
          return await exited;
        } finally {
          clearTimeout(timer);
        }
      })();
      return stopping;
    },
  };
}
