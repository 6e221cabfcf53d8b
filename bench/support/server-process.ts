// A Vecraft service as a separate process, the way it runs in production: spawned from its
// built entry point on 127.0.0.1:0, reached over its real port, stopped with SIGTERM
// (SIGKILL if it does not exit in time, and always when the benchmark itself exits).
import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parsePrometheus } from "../journal/stats.js";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

const OUTPUT_KEEP = 64 * 1024;

export interface ServerProcessOptions {
  /** Node flags, then the entry point and its flags. */
  readonly args: readonly string[];
  /** Names the process in errors, e.g. "journal". */
  readonly name: string;
  /** The line it prints when serving; group 1 is the URL. */
  readonly ready: RegExp;
  readonly env?: NodeJS.ProcessEnv;
  readonly startTimeoutMs: number;
  readonly stopTimeoutMs: number;
}

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

export interface ServerProcess {
  readonly url: string;
  readonly pid: number;
  readonly args: readonly string[];
  /** Scrapes /metrics (HTTP/1.1 on the same port). */
  metrics(): Promise<Map<string, number>>;
  /** The last 64 KiB the process wrote to stdout and stderr (its JSON logs and failures). */
  outputTail(): string;
  /** SIGTERM, wait for a clean exit (so that --cpu-prof profiles get written), then SIGKILL. */
  stop(): Promise<Exit>;
}

/** Children still running, killed if the benchmark itself exits early. */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

export async function startServerProcess(opts: ServerProcessOptions): Promise<ServerProcess> {
  const args = [...opts.args];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env } });
  live.add(child);
  let output = "";
  const keep = (d: string): void => {
    output = (output + d).slice(-OUTPUT_KEEP);
  };
  child.stderr.setEncoding("utf8").on("data", keep);
  const exited = new Promise<Exit>((resolve) =>
    child.once("exit", (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      let seen = "";
      const timer = setTimeout(() => reject(new Error(`${opts.name} did not print its URL within ${opts.startTimeoutMs} ms; output:\n${output}`)), opts.startTimeoutMs);
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        keep(d);
        seen += d;
        const m = opts.ready.exec(seen);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`${opts.name} exited (code ${code}, signal ${signal}) before serving; output:\n${output}`));
      });
    });
    if (new URL(url).hostname !== "127.0.0.1") throw new Error(`${opts.name} serves on ${url}, expected 127.0.0.1`);
  } catch (e) {
    child.kill("SIGKILL");
    await exited;
    throw e;
  }
  let stopping: Promise<Exit> | undefined;
  return {
    url,
    pid: child.pid ?? -1,
    args,
    async metrics() {
      const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`GET /metrics: HTTP ${res.status}`);
      return parsePrometheus(await res.text());
    },
    outputTail: () => output,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return exited;
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), opts.stopTimeoutMs);
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
