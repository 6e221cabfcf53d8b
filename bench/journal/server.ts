// The journal service as a separate process, with a fresh data directory per scenario.
import { join } from "node:path";
import { repoRoot, startServerProcess, type ServerProcess } from "../support/server-process.js";

export { repoRoot };
export const journalMain = join(repoRoot, "services", "journal-service", "dist", "main.js");

export interface ServerOptions {
  readonly dataDir: string;
  readonly partitions: number;
  /** Extra journal flags, e.g. ["--tick-interval-ms", "0"]. */
  readonly extraArgs: readonly string[];
  /** Extra node flags, e.g. ["--cpu-prof", "--cpu-prof-dir", dir]. */
  readonly nodeArgs: readonly string[];
}

export type JournalServer = ServerProcess;

export function startJournalServer(opts: ServerOptions): Promise<JournalServer> {
  return startServerProcess({
    name: "journal",
    args: [...opts.nodeArgs, journalMain, "--host", "127.0.0.1", "--port", "0", "--data-dir", opts.dataDir, "--partitions", String(opts.partitions), ...opts.extraArgs],
    ready: /Vecraft journal serving on (http:\/\/[^\s]+)/,
    startTimeoutMs: 30_000,
    stopTimeoutMs: 20_000,
  });
}
