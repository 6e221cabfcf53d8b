// A Vecraft process for integration and fault tests: spawn a service's dist/main.js, wait
// for its "serving on <url>" line, then SIGKILL or SIGTERM it. Callers check readiness
// with a real request (an open port is not readiness).
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** Everything the process wrote (JSON logs go to stdout, failures to stderr). */
  logs(): string;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

export async function spawnServer(main: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, startTimeoutMs = 60_000): Promise<ServerProcess> {
  const child = spawn(process.execPath, [main, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let logs = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => (logs += d));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${main} did not start in ${startTimeoutMs} ms; output:\n${logs}`)), startTimeoutMs);
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      logs += d;
      const m = /serving on (http:\/\/[^\s]+)/.exec(logs);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${main} exited with ${code} before serving; output:\n${logs}`));
    });
  });
  return {
    child,
    url,
    logs: () => logs,
    async kill9() {
      child.kill("SIGKILL");
      await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await exited;
    },
  };
}
