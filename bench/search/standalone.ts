// Vecraft standalone as a separate process, the way `pnpm start` runs it: spawned from its
// built entry point on 127.0.0.1:0 with a fresh data directory, reached over its real
// port with the public gRPC API, stopped with SIGTERM (SIGKILL if it does not exit in
// time, and always when the benchmark itself exits).
import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { VecraftService } from "@vecraft/rpc";
import { parsePrometheus } from "../journal/stats.js";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const standaloneMain = join(repoRoot, "services", "standalone", "dist", "main.js");

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const OUTPUT_KEEP = 64 * 1024;

export interface StandaloneOptions {
  readonly dataDir: string;
  /** Extra standalone flags, e.g. ["--partitions", "4"]. */
  readonly extraArgs: readonly string[];
  /** Extra node flags, e.g. ["--cpu-prof", "--cpu-prof-dir", dir]. */
  readonly nodeArgs: readonly string[];
}

export type VecraftClient = Client<typeof VecraftService>;

export interface Standalone {
  readonly url: string;
  readonly pid: number;
  readonly args: readonly string[];
  /** A client on its own HTTP/2 connection. */
  newClient(): VecraftClient;
  /** Scrapes /metrics on the public port (every role shares one registry in standalone). */
  metrics(): Promise<Map<string, number>>;
  /** The last 64 KiB the process wrote (its JSON logs go to stdout, failures to stderr). */
  outputTail(): string;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Children still running, killed if the benchmark exits early. */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

export async function startStandalone(opts: StandaloneOptions): Promise<Standalone> {
  const args = [...opts.nodeArgs, standaloneMain, "--port", "0", "--data-dir", opts.dataDir, "--log-level", "warn", ...opts.extraArgs];
  const child = spawn(process.execPath, args, {
    stdio: ["ignore", "pipe", "pipe"],
    // The standalone reads these; the benchmark's flags must win.
    env: { ...process.env, VECRAFT_PORT: "", VECRAFT_DATA_DIR: "", VECRAFT_HOST: "", VECRAFT_LOG_LEVEL: "" },
  });
  live.add(child);
  let output = "";
  const keep = (d: string): void => {
    output = (output + d).slice(-OUTPUT_KEEP);
  };
  child.stderr.setEncoding("utf8").on("data", keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      let seen = "";
      const timer = setTimeout(() => reject(new Error(`vecraft did not print its URL within ${START_TIMEOUT_MS} ms; output:\n${output}`)), START_TIMEOUT_MS);
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        keep(d);
        seen += d;
        const m = /Vecraft standalone serving on (http:\/\/[^\s]+)/.exec(seen);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`vecraft exited (code ${code}, signal ${signal}) before serving; output:\n${output}`));
      });
    });
    if (new URL(url).hostname !== "127.0.0.1") throw new Error(`vecraft serves on ${url}, expected 127.0.0.1`);
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
    newClient: () => createClient(VecraftService, createGrpcTransport({ baseUrl: url })),
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
