// A journal service in its own process, for fault tests.
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { JournalService } from "@vecraft/rpc";
import { repoRoot, spawnServer, type ServerProcess } from "../support/server-process.js";

export interface JournalProcess extends ServerProcess {
  readonly client: Client<typeof JournalService>;
}

export async function startJournalProcess(dataDir: string, args: string[] = []): Promise<JournalProcess> {
  const server = await spawnServer(join(repoRoot, "services", "journal-service", "dist", "main.js"), ["--data-dir", dataDir, "--port", "0", ...args], {
    VECRAFT_LOG_LEVEL: "info",
  });
  const client = createClient(JournalService, createGrpcTransport({ baseUrl: server.url }));
  await client.getPartitions({});
  return { ...server, client };
}
