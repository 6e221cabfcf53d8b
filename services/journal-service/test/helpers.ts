// Test helpers: a journal service on a real port with a real data directory, and clients
// over real HTTP/2 (gRPC) and HTTP/1.1 (Connect JSON).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { silentLogger } from "@vecraft/common";
import { DataPayloadSchema, JournalService, type EntryInput } from "@vecraft/rpc";
import { loadJournalConfig, start, type JournalConfig, type JournalDeps, type RunningJournal } from "../src/index.js";

export type JournalClient = Client<typeof JournalService>;

export async function tempDir(prefix: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `vecraft-${prefix}-`));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

export function testConfig(dataDir: string, overrides: Partial<Record<keyof JournalConfig, string>> = {}): JournalConfig {
  const argv = ["--data-dir", dataDir, "--port", "0", "--partitions", "2", "--shutdown-grace-ms", "200"];
  for (const [k, v] of Object.entries(overrides)) argv.push(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, String(v));
  return loadJournalConfig({ argv, env: {} });
}

export async function startJournal(config: JournalConfig, deps: Partial<JournalDeps> = {}): Promise<{ running: RunningJournal; client: JournalClient }> {
  const running = await start(config, { logger: silentLogger, ...deps });
  const client = createClient(JournalService, createGrpcTransport({ baseUrl: running.url }));
  return { running, client };
}

export function dataEntry(collection: string, ids: string[], opts: { requestId?: string; principal?: string; deletes?: string[]; dim?: number } = {}): EntryInput {
  const dim = opts.dim ?? 4;
  return {
    $typeName: "vecraft.v1.EntryInput",
    payload: {
      case: "data",
      value: create(DataPayloadSchema, {
        collection,
        shard: 0,
        upserts: ids.map((id, i) => ({
          id,
          vectorF32: new Uint8Array(Float32Array.from({ length: dim }, (_, k) => i + k + 0.5).buffer),
          metadataJson: JSON.stringify({ id, i }),
        })),
        deleteIds: opts.deletes ?? [],
        requestId: opts.requestId ?? "",
        principal: opts.principal ?? "",
      }),
    },
  };
}
