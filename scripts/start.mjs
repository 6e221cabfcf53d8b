// `pnpm start`: installs and builds if needed, then runs Vecraft standalone on this
// machine with a data directory (default ./data). Flags pass through, e.g.
//   pnpm start --port 8090 --data-dir /tmp/v
// Until the data path lands (storage nodes, query processors, gateway), standalone mode
// runs the journal service only: see README.md.
import process from "node:process";
import { spawn } from "node:child_process";
import { build, checkNode, ensureInstalled, root } from "./lib.mjs";

checkNode();
ensureInstalled();
build();
const args = process.argv.slice(2);
// Standalone listens on 127.0.0.1:8080 unless told otherwise (API.md).
if (!args.some((a) => a === "--port" || a.startsWith("--port="))) args.push("--port", process.env.VECRAFT_PORT ?? "8080");
const child = spawn(process.execPath, ["services/journal-service/dist/main.js", ...args], { cwd: root, stdio: "inherit" });
// The child gets Ctrl-C from the terminal itself (same process group); forward SIGTERM.
process.on("SIGTERM", () => child.kill("SIGTERM"));
process.on("SIGINT", () => {
  // The child shuts down gracefully on the same SIGINT; wait for it.
});
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
