// Helpers shared by the repo's entry scripts (start, test). Plain Node, no dependencies:
// these scripts must run on a fresh clone before `pnpm install` has happened.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export function say(msg) {
  process.stderr.write(`${msg}\n`);
}

export function die(msg) {
  say(`\n${msg}`);
  process.exit(1);
}

/** Runs a command with inherited stdio in the repo root; exits on failure unless allowFail. */
export function run(cmd, args, { allowFail = false, env = process.env } = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit", env });
  if (r.error) die(`could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0 && !allowFail) die(`${cmd} ${args.join(" ")} failed (exit ${r.status ?? r.signal}).`);
  return r.status ?? 1;
}

export function checkNode() {
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major < 20 || (major === 20 && minor < 11)) die(`Vecraft needs Node.js 20.11 or newer; this is ${process.version}.`);
}

/**
 * Installs dependencies (building better-sqlite3 from source where no prebuilt binary
 * can be downloaded) when node_modules is missing or older than the lockfile.
 */
export function ensureInstalled() {
  // A marker holding the hash of the lockfile and workspace file that the last install
  // used: reinstall only when they changed (or nothing was ever installed).
  const marker = path.join(root, "node_modules", ".vecraft-installed");
  const hash = createHash("sha256");
  for (const f of ["pnpm-lock.yaml", "pnpm-workspace.yaml"]) hash.update(readFileSync(path.join(root, f)));
  const want = hash.digest("hex");
  if (existsSync(marker) && readFileSync(marker, "utf8") === want) return;
  say("vecraft: installing dependencies (pnpm install; better-sqlite3 compiles, about a minute the first time)");
  const env = { ...process.env };
  // node-gyp needs Node's headers; Debian's nodejs keeps them under /usr/include/node.
  if (!env.npm_config_nodedir && existsSync("/usr/include/node/node.h")) env.npm_config_nodedir = "/usr";
  run("pnpm", ["install", "--frozen-lockfile"], { env });
  writeFileSync(marker, want);
}

export function build() {
  run("pnpm", ["-s", "exec", "tsc", "-b"]);
}
