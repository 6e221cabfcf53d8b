// `vecraft serve ROLE [FLAGS...]`: one Vecraft service in the foreground, `node
// services/<service>/dist/main.js FLAGS...` as a child, the way the container image runs
// every role (deployment/docker/Dockerfile: ENTRYPOINT `node services/cli/dist/main.js
// serve`). The flags go to the service untouched (`vecraft serve storage --help` is the
// storage node's help); its output is this process's; SIGTERM, SIGINT and SIGHUP are
// passed on; the exit code is the service's (128 + n when a signal ended it).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import { defaultServicesDir } from "../cluster/launcher.js";
import { SERVICE_DIR } from "../cluster/roles.js";
import { CommandFailed, EXIT_OK, UsageError } from "../errors.js";
import type { CommandContext, CommandSpec, ParsedArgs } from "../registry.js";

/** Role -> directory under services/; the cluster roles' directories come from the launcher's table. */
export const SERVE_ROLES: Readonly<Record<string, string>> = {
  "meta-manager": SERVICE_DIR.meta,
  journal: SERVICE_DIR.journal,
  storage: SERVICE_DIR.storage,
  query: SERVICE_DIR.query,
  gateway: SERVICE_DIR.gateway,
  standalone: "standalone",
};

const FORWARDED: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT", "SIGHUP"];

const ROLE_NAMES = Object.keys(SERVE_ROLES).join(", ");

function help(): string {
  return [
    "Usage: vecraft serve ROLE [FLAGS...]",
    "",
    "Runs one Vecraft service in the foreground: `node services/<service>/dist/main.js FLAGS...`.",
    "The flags (and VECRAFT_* environment variables) are the service's own: `vecraft serve ROLE --help`",
    "lists them. SIGTERM/SIGINT stop the service gracefully; the exit code is the service's.",
    "This is the container image's entrypoint (deployment/docker/Dockerfile).",
    "",
    "Roles:",
    ...Object.entries(SERVE_ROLES).map(([role, dir]) => `  ${role.padEnd(13)} services/${dir}`),
    "",
    "Examples:",
    "  vecraft serve standalone --host 0.0.0.0 --port 8080 --data-dir /data",
    "  vecraft serve journal --data-dir /data --partitions 3 --meta-url http://meta:7200",
    "  vecraft serve storage --help",
  ].join("\n");
}

async function serve(ctx: CommandContext, args: ParsedArgs): Promise<number> {
  const [role, ...flags] = args.positionals;
  if (role === "--help" || role === "-h") {
    ctx.io.out(help());
    return EXIT_OK;
  }
  if (role === undefined) throw new UsageError(`missing ROLE (one of ${ROLE_NAMES})`);
  const dir = Object.hasOwn(SERVE_ROLES, role) ? SERVE_ROLES[role] : undefined;
  if (dir === undefined) throw new UsageError(`unknown role ${JSON.stringify(role)}; roles: ${ROLE_NAMES}`);
  const main = join(defaultServicesDir(), dir, "dist", "main.js");
  if (!existsSync(main)) throw new CommandFailed(`${main} does not exist: build the services first (\`pnpm build\`)`);
  return runForeground(process.execPath, [main, ...flags], ctx.env);
}

/**
 * Runs the child until it exits. It gets its own process group so that a Ctrl-C in a
 * terminal reaches it once (through us) rather than twice: a service takes a second
 * signal as "exit now".
 */
function runForeground(command: string, argv: readonly string[], env: CommandContext["env"]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...argv], { stdio: ["ignore", "inherit", "inherit"], env: { ...env }, detached: true });
    const forward = (signal: NodeJS.Signals): void => {
      child.kill(signal);
    };
    // Last resort if this process exits first (an exception): do not leave the service behind.
    const killChild = (): void => {
      child.kill("SIGKILL");
    };
    const cleanup = (): void => {
      for (const s of FORWARDED) process.removeListener(s, forward);
      process.removeListener("exit", killChild);
    };
    for (const s of FORWARDED) process.on(s, forward);
    process.on("exit", killChild);
    child.once("error", (e) => {
      cleanup();
      reject(new CommandFailed(`cannot run ${command}: ${e.message}`));
    });
    child.once("exit", (code, signal) => {
      cleanup();
      resolve(code ?? 128 + (signal !== null ? constants.signals[signal] : 0));
    });
  });
}

const serveCommand: CommandSpec = {
  path: ["serve"],
  summary: "Run one service in the foreground (meta-manager, journal, storage, query, gateway, standalone): the container entrypoint",
  description: help(),
  args: [{ name: "ROLE" }, { name: "FLAGS", optional: true, variadic: true }],
  passThrough: true,
  run: serve,
};

export const serveCommands: readonly CommandSpec[] = [serveCommand];
