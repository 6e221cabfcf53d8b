#!/usr/bin/env node
// Fails when the protos are not lint-clean, not buf-formatted, or when the committed
// generated code in shared/rpc/src/gen differs from what `buf generate` produces now.
// CI runs it (through `pnpm test`) as `pnpm check:generated`.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const genDir = "shared/rpc/src/gen";
const binDir = path.join(root, "node_modules", ".bin");
// buf finds protoc-gen-es (a local plugin) on PATH, like `pnpm generate` does.
const env = { ...process.env, PATH: [binDir, process.env.PATH ?? ""].join(path.delimiter) };

function fail(message) {
  process.stderr.write(`check-generated: ${message}\n`);
  process.exit(1);
}

/** Runs a command in the repo root; returns its exit status and captured output. */
function run(command, args, { capture = false } = {}) {
  const result = spawnSync(command, args, {
    cwd: root,
    env,
    encoding: "utf8",
    stdio: capture ? ["ignore", "pipe", "inherit"] : "inherit",
  });
  if (result.error) fail(`could not run ${command}: ${result.error.message}`);
  return { status: result.status ?? 1, stdout: result.stdout ?? "" };
}

function step(title, command, args, hint) {
  process.stdout.write(`check-generated: ${title}\n`);
  const { status } = run(command, args);
  if (status !== 0) fail(`${title} failed (exit ${status}). ${hint}`);
}

const buf = path.join(binDir, process.platform === "win32" ? "buf.cmd" : "buf");
if (!existsSync(buf)) fail(`${buf} not found; run \`pnpm install\` first.`);

step("buf lint", buf, ["lint"], "Fix the protos in proto/ (every element needs a doc comment).");
step(
  "buf format --diff --exit-code",
  buf,
  ["format", "--diff", "--exit-code"],
  "Run `pnpm exec buf format -w` and commit the result.",
);
// Generate into a temporary directory and compare with the working tree, so the check
// passes for a consistent uncommitted change and never rewrites files itself.
const tmp = mkdtempSync(path.join(os.tmpdir(), "vecraft-gen-"));
try {
  step("buf generate (to a temporary directory)", buf, ["generate", "--output", tmp], "See buf's message above.");
  const fresh = listFiles(path.join(tmp, genDir));
  const current = listFiles(path.join(root, genDir));
  const problems = [];
  for (const f of fresh) {
    if (!current.includes(f)) problems.push(`missing: ${genDir}/${f}`);
    else if (!readFileSync(path.join(tmp, genDir, f)).equals(readFileSync(path.join(root, genDir, f)))) problems.push(`differs: ${genDir}/${f}`);
  }
  for (const f of current) if (!fresh.includes(f)) problems.push(`stale: ${genDir}/${f}`);
  if (problems.length > 0) {
    fail(
      [
        `generated code in ${genDir} is out of date with the protos:`,
        ...problems.map((line) => `  ${line}`),
        "Run `pnpm generate`, review the diff, and commit it together with the proto change.",
        "Never edit files under shared/rpc/src/gen by hand.",
      ].join("\n"),
    );
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
process.stdout.write(`check-generated: ok, ${genDir} matches the protos\n`);

function listFiles(dir, prefix = "") {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(path.join(dir, e.name), rel));
    else out.push(rel);
  }
  return out.sort();
}
