#!/usr/bin/env node
// The `vecraft` executable: wires the process (argv, env, stdio, Ctrl-C) to runCli.
import { createInterface } from "node:readline/promises";
import { runCli } from "./cli.js";

async function main(): Promise<void> {
  // `vecraft ops | head`: a reader that went away is not an error worth a stack trace.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  const interrupt = new AbortController();
  // First Ctrl-C: stop gracefully (in-flight batches are abandoned, exit 130). Second: Node's default.
  process.once("SIGINT", () => interrupt.abort(new Error("interrupted")));
  // SIGTERM too: `vecraft cluster up` must stop its children before it goes.
  process.once("SIGTERM", () => interrupt.abort(new Error("terminated")));
  const prompt = process.stdin.isTTY
    ? async (question: string): Promise<string> => {
        const rl = createInterface({ input: process.stdin, output: process.stderr });
        try {
          return await rl.question(question, { signal: interrupt.signal });
        } finally {
          rl.close();
        }
      }
    : undefined;
  process.exitCode = await runCli(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    signal: interrupt.signal,
    ...(prompt !== undefined ? { prompt } : {}),
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`vecraft: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
