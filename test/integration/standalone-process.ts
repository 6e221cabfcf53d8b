// Vecraft standalone as a real process (what `pnpm start` runs), for end-to-end tests.
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { VecraftService } from "@vecraft/rpc";
import { repoRoot, spawnServer, type ServerProcess } from "../support/server-process.js";

export interface VecraftProcess extends ServerProcess {
  readonly client: Client<typeof VecraftService>;
  /** POSTs JSON to a VecraftService method, as curl would. */
  json(method: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
}

export async function startVecraft(dataDir: string, args: string[] = []): Promise<VecraftProcess> {
  const server = await spawnServer(
    join(repoRoot, "services", "standalone", "dist", "main.js"),
    ["--data-dir", dataDir, "--port", "0", "--log-level", "warn", ...args],
    { VECRAFT_PORT: "", VECRAFT_DATA_DIR: "" },
  );
  const client = createClient(VecraftService, createGrpcTransport({ baseUrl: server.url }));
  await client.listCollections({});
  return {
    ...server,
    client,
    async json(method, body) {
      const res = await fetch(`${server.url}/vecraft.v1.VecraftService/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    },
  };
}
