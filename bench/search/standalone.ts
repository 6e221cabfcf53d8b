// Vecraft standalone as a separate process, the way `pnpm start` runs it, reached over its
// public gRPC API.
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { VecraftService } from "@vecraft/rpc";
import { repoRoot, startServerProcess, type ServerProcess } from "../support/server-process.js";

export { repoRoot };
export const standaloneMain = join(repoRoot, "services", "standalone", "dist", "main.js");

export interface StandaloneOptions {
  readonly dataDir: string;
  /** Extra standalone flags, e.g. ["--partitions", "4"]. */
  readonly extraArgs: readonly string[];
  /** Extra node flags, e.g. ["--cpu-prof", "--cpu-prof-dir", dir]. */
  readonly nodeArgs: readonly string[];
}

export type VecraftClient = Client<typeof VecraftService>;

export interface Standalone extends ServerProcess {
  /** A client on its own HTTP/2 connection. */
  newClient(): VecraftClient;
}

export async function startStandalone(opts: StandaloneOptions): Promise<Standalone> {
  const server = await startServerProcess({
    name: "vecraft",
    args: [...opts.nodeArgs, standaloneMain, "--port", "0", "--data-dir", opts.dataDir, "--log-level", "warn", ...opts.extraArgs],
    // The standalone reads these; the benchmark's flags must win.
    env: { VECRAFT_PORT: "", VECRAFT_DATA_DIR: "", VECRAFT_HOST: "", VECRAFT_LOG_LEVEL: "" },
    ready: /Vecraft standalone serving on (http:\/\/[^\s]+)/,
    startTimeoutMs: 60_000,
    stopTimeoutMs: 30_000,
  });
  return { ...server, newClient: () => createClient(VecraftService, createGrpcTransport({ baseUrl: server.url })) };
}
