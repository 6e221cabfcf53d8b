// `pnpm test`: everything CI runs, in order, on a fresh clone.
//   install (if needed) -> etcd (if missing) -> build -> generated-code drift -> lint
//   -> type-check tests -> vitest (unit, integration, fault)
// Extra arguments go to vitest (e.g. `pnpm test services/journal-service`).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { build, checkNode, ensureInstalled, run, say } from "./lib.mjs";
import { ensureEtcd } from "./ensure-etcd.mjs";

checkNode();
ensureInstalled();
const etcd = ensureEtcd();
say(`vecraft: etcd ${etcd.version} at ${etcd.bin}`);
say("vecraft: build (tsc -b)");
build();
say("vecraft: protos and generated code");
run("node", ["scripts/check-generated.mjs"]);
say("vecraft: lint");
run("pnpm", ["-s", "exec", "eslint", "--max-warnings", "0", "."]);
say("vecraft: type-check tests");
run("pnpm", ["-s", "exec", "tsc", "-p", "tsconfig.tests.json"]);

const out = mkdtempSync(path.join(os.tmpdir(), "vecraft-vitest-"));
const report = path.join(out, "report.json");
say("vecraft: vitest");
const status = run(
  "pnpm",
  ["-s", "exec", "vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...process.argv.slice(2)],
  { allowFail: true, env: { ...process.env, VECRAFT_ETCD_BIN: etcd.bin } },
);
let summary = "";
try {
  const r = JSON.parse(readFileSync(report, "utf8"));
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  summary = `vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ""}`;
  if (r.numTotalTests === 0) {
    say("vecraft: vitest ran no test");
    process.exitCode = 1;
  }
} catch {
  // No report means vitest itself failed before running; its own output says why.
  summary = "vitest: 0 passed, 1 failed";
}
rmSync(out, { recursive: true, force: true });
process.stdout.write(`\n${summary}\n`);
if (status !== 0) process.exitCode = status;
