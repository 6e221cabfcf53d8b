// A journal service in its own process, for fault tests: start, wait until it answers a
// real request, kill it with SIGKILL, restart it on the same data directory.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { JournalService } from "@vecraft/rpc";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const journalMain = join(repo, "services", "journal-service", "dist", "main.js");

export interface JournalProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly client: Client<typeof JournalService>;
  /** Everything the process wrote to stderr (its JSON logs). */
  readonly logs: () => string;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

export async function startJournalProcess(dataDir: string, args: string[] = []): Promise<JournalProcess> {
  const child = spawn(process.execPath, [journalMain, "--data-dir", dataDir, "--port", "0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, VECRAFT_LOG_LEVEL: "info" },
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`journal did not start in 30 s; stderr:\n${stderr}`)), 30_000);
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      const m = /serving on (http:\/\/[^\s]+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`journal exited with ${code} before serving; stderr:\n${stderr}`));
    });
  });
  const client = createClient(JournalService, createGrpcTransport({ baseUrl: url }));
  // Ready means a real request succeeds, not an open port.
  await client.getPartitions({});
  return {
    child,
    url,
    client,
    logs: () => stderr,
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
