// `pnpm start`: installs and builds if needed, then runs Vecraft standalone (every role in
// one process, embedded metadata, data in ./data) on 127.0.0.1:8080. Flags pass through:
//   pnpm start --port 8090 --data-dir /tmp/v        (also VECRAFT_PORT, VECRAFT_DATA_DIR)
//   pnpm start --help
import process from "node:process";
import { spawn } from "node:child_process";
import { build, checkNode, ensureInstalled, root } from "./lib.mjs";

checkNode();
ensureInstalled();
build();
const child = spawn(process.execPath, ["services/standalone/dist/main.js", ...process.argv.slice(2)], { cwd: root, stdio: "inherit" });
// Ctrl-C reaches the child directly (same process group); it shuts down gracefully and
// this process exits with its code. SIGTERM is forwarded.
process.on("SIGINT", () => {});
process.on("SIGTERM", () => child.kill("SIGTERM"));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
