// Vecraft standalone as a real process (what `pnpm start` runs), for end-to-end tests:
// start on a free port, wait until a real request succeeds, SIGKILL, restart.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { VecraftService } from "@vecraft/rpc";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const standaloneMain = join(repo, "services", "standalone", "dist", "main.js");

export interface VecraftProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly client: Client<typeof VecraftService>;
  logs(): string;
  /** POSTs JSON to a VecraftService method, as curl would. */
  json(method: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

export async function startVecraft(dataDir: string, args: string[] = []): Promise<VecraftProcess> {
  const child = spawn(process.execPath, [standaloneMain, "--data-dir", dataDir, "--port", "0", "--log-level", "warn", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, VECRAFT_PORT: "", VECRAFT_DATA_DIR: "" },
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`vecraft did not start in 60 s; stderr:\n${stderr}`)), 60_000);
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stderr += d; // the JSON logs go to stdout
      out += d;
      const m = /serving on (http:\/\/[^\s]+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`vecraft exited with ${code} before serving; stderr:\n${stderr}`));
    });
  });
  const client = createClient(VecraftService, createGrpcTransport({ baseUrl: url }));
  await client.listCollections({});
  return {
    child,
    url,
    client,
    logs: () => stderr,
    async json(method, body) {
      const res = await fetch(`${url}/vecraft.v1.VecraftService/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    },
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
