// A real etcd server for one test file: found like scripts/ensure-etcd.mjs does
// ($VECRAFT_ETCD_BIN, `etcd` on PATH, /usr/bin/etcd, /usr/local/bin/etcd), started on
// 127.0.0.1 with free client and peer ports and a temporary data dir, ready once a real
// request succeeds. stop()/start() restart it on the same ports and data.
// No etcd found is a test failure (with what to install), never a skip.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { afterAll, beforeAll } from "vitest";

export interface EtcdServer {
  /** The client URL, e.g. http://127.0.0.1:41234. */
  readonly endpoint: string;
  readonly bin: string;
  /** A raw etcd3 client for test setup (deleting prefixes, compaction). */
  readonly client: Etcd3;
  /** Stops the server (SIGTERM); its data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same ports and data, ready when this resolves. */
  start(): Promise<void>;
  /** Stops it and removes its data. */
  cleanup(): Promise<void>;
  logs(): string;
}

export function findEtcdBinary(): string {
  const candidates = [process.env.VECRAFT_ETCD_BIN, "etcd", "/usr/bin/etcd", "/usr/local/bin/etcd"].filter((c): c is string => c !== undefined && c !== "");
  for (const c of candidates) {
    const r = spawnSync(c, ["--version"], { encoding: "utf8" });
    if (r.status === 0) return c;
  }
  throw new Error(
    `These tests need an etcd server (3.4 or newer) and none was found (tried ${candidates.join(", ")}). ` +
      "Install it with `sudo apt-get install -y etcd-server`, or set VECRAFT_ETCD_BIN to an etcd binary.",
  );
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function startEtcd(readyTimeoutMs = 15_000): Promise<EtcdServer> {
  const bin = findEtcdBinary();
  const dataDir = mkdtempSync(join(tmpdir(), "vecraft-etcd-"));
  const clientPort = await freePort();
  let peerPort = await freePort();
  while (peerPort === clientPort) peerPort = await freePort();
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    "--name=test",
    `--data-dir=${join(dataDir, "data")}`,
    `--listen-client-urls=${endpoint}`,
    `--advertise-client-urls=${endpoint}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=test=${peer}`,
    "--initial-cluster-state=new",
    "--logger=zap",
    "--log-level=warn",
  ];
  let out = "";
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const client = new Etcd3({ hosts: endpoint, grpcOptions: { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 500 } });

  const start = async (): Promise<void> => {
    const c = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    child = c;
    c.stdout?.setEncoding("utf8").on("data", (d: string) => (out = (out + d).slice(-20_000)));
    c.stderr?.setEncoding("utf8").on("data", (d: string) => (out = (out + d).slice(-20_000)));
    let gone = false;
    exited = new Promise((resolve) => c.once("exit", () => ((gone = true), resolve())));
    const deadline = Date.now() + readyTimeoutMs;
    let last: unknown;
    for (;;) {
      if (gone) throw new Error(`etcd (${bin}) exited before it was ready; output:\n${out}`);
      try {
        // A real request, not an open port.
        await client.kv.range({ key: Buffer.from("ready-check") }, { deadline: Date.now() + 1000 });
        return;
      } catch (e) {
        last = e;
      }
      if (Date.now() > deadline) {
        c.kill("SIGKILL");
        throw new Error(`etcd (${bin}) not ready at ${endpoint} within ${readyTimeoutMs} ms: ${String(last)}; output:\n${out}`);
      }
      await sleep(50);
    }
  };
  const stop = async (): Promise<void> => {
    const c = child;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    c.kill("SIGTERM");
    const t = setTimeout(() => c.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(t);
  };
  await start();
  return {
    endpoint,
    bin,
    client,
    stop,
    start,
    async cleanup() {
      client.close();
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
    logs: () => out,
  };
}

/** Starts one etcd for the calling test file (beforeAll/afterAll); the getter fails clearly if it did not start. */
export function etcdForFile(): () => EtcdServer {
  let etcd: EtcdServer | undefined;
  beforeAll(async () => {
    etcd = await startEtcd();
  }, 30_000);
  afterAll(async () => {
    await etcd?.cleanup();
  });
  return () => {
    if (etcd === undefined) throw new Error("etcd did not start (see the beforeAll failure)");
    return etcd;
  };
}
