// Makes sure an etcd server binary is available for the tests that need a real etcd.
// Order: $VECRAFT_ETCD_BIN, `etcd` on PATH, /usr/bin/etcd; otherwise, as root with
// apt-get, install Debian's etcd-server; otherwise stop and say exactly what to install.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { die, say } from "./lib.mjs";

function works(bin) {
  const r = spawnSync(bin, ["--version"], { encoding: "utf8" });
  return r.status === 0 ? (r.stdout.split("\n")[0] ?? "etcd") : undefined;
}

export function findEtcd() {
  const candidates = [process.env.VECRAFT_ETCD_BIN, "etcd", "/usr/bin/etcd", "/usr/local/bin/etcd"].filter(Boolean);
  for (const c of candidates) {
    const v = works(c);
    if (v) return { bin: c, version: v };
  }
  return undefined;
}

export function ensureEtcd() {
  let found = findEtcd();
  if (found) return found;
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  const hasApt = existsSync("/usr/bin/apt-get");
  if (isRoot && hasApt) {
    say("vecraft: etcd not found; installing Debian's etcd-server (apt-get)");
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
    spawnSync("apt-get", ["install", "-y", "-qq", "etcd-server"], { stdio: "inherit", env });
    found = findEtcd();
    if (found) return found;
  }
  die(
    [
      "The tests need an etcd server (3.4 or newer) and none was found.",
      hasApt ? "Install it with:  sudo apt-get install -y etcd-server" : "Install etcd 3.4+ so that `etcd --version` works (e.g. your distribution's etcd-server package),",
      "or point VECRAFT_ETCD_BIN at an etcd binary, then run `pnpm test` again.",
    ].join("\n"),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { bin, version } = ensureEtcd();
  say(`vecraft: using ${bin} (${version})`);
}
