// The deployment (deployment/): what can be checked without Docker, Kubernetes or Helm,
// none of which run here. `vecraft serve <role>` (the image's entrypoint) as real
// processes: every role's --help, a usage error, and standalone and journal started the
// way the image starts them, ready, then stopped by SIGTERM with exit code 0. And static
// checks of the Helm chart against the built services: every .Values path the templates
// use exists, every flag they pass is in that service's --help, the local launcher's
// flags (services/cli/src/cluster/roles.ts) are all wired, and container ports, --port
// flags and the services' default ports agree.
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ROLE_FLAGS, findEtcd } from "@vecraft/cli";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { repoRoot, spawnServer } from "../support/server-process.js";

const run = promisify(execFile);
const cli = join(repoRoot, "services", "cli", "dist", "main.js");
const chartDir = join(repoRoot, "deployment", "helm", "vecraft");

/** `vecraft serve` roles, and the key of the launcher's role table for the cluster ones. */
const ROLES = {
  "meta-manager": "meta",
  journal: "journal",
  storage: "storage",
  query: "query",
  gateway: "gateway",
  standalone: undefined,
} as const;
type ServeRole = keyof typeof ROLES;
const SERVE_ROLES = Object.keys(ROLES) as ServeRole[];

/** The children must be configured by what the test passes, not by the shell's VECRAFT_*. */
const cleanEnv = (): NodeJS.ProcessEnv => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("VECRAFT_")));

interface ServiceHelp {
  readonly text: string;
  /** Flag names without dashes; `--[no-]x` gives x. */
  readonly flags: Set<string>;
  readonly defaultPort: number | undefined;
}

function parseHelp(text: string): ServiceHelp {
  const flags = new Set([...text.matchAll(/^\s+--(?:\[no-\])?([a-z0-9-]+)/gm)].map((m) => m[1]!));
  const port = /^\s+--port <int>.*\n.*default (\d+)\)/m.exec(text);
  return { text, flags, defaultPort: port ? Number(port[1]) : undefined };
}

const helps = new Map<ServeRole, ServiceHelp>();

beforeAll(async () => {
  await Promise.all(
    SERVE_ROLES.map(async (role) => {
      const { stdout } = await run(process.execPath, [cli, "serve", role, "--help"], { env: cleanEnv() });
      helps.set(role, parseHelp(stdout));
    }),
  );
});

describe("vecraft serve", () => {
  it("hands --help to every role's service", () => {
    const first: Record<ServeRole, RegExp> = {
      "meta-manager": /^vecraft meta-manager/,
      journal: /^vecraft journal service/,
      storage: /^vecraft storage node/,
      query: /^vecraft query processor/,
      gateway: /^vecraft api gateway/,
      standalone: /^vecraft standalone/,
    };
    for (const role of SERVE_ROLES) {
      const help = helps.get(role)!;
      expect(help.text, role).toMatch(first[role]);
      expect(help.flags.has("port"), role).toBe(true);
      expect(help.defaultPort, role).toBeGreaterThan(0);
    }
  });

  it("rejects an unknown role with the list of roles (exit 2)", () => {
    const r = spawnSync(process.execPath, [cli, "serve", "nope"], { encoding: "utf8", env: cleanEnv() });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown role "nope"');
    expect(r.stderr).toContain(`roles: ${SERVE_ROLES.join(", ")}`);
    const usage = spawnSync(process.execPath, [cli, "serve", "--help"], { encoding: "utf8", env: cleanEnv() });
    expect(usage.status).toBe(0);
    for (const role of SERVE_ROLES) expect(usage.stdout).toContain(`  ${role}`);
  });
});

describe("the image's entrypoint as a plain process", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function readyThenSigterm(role: ServeRole, args: string[]): Promise<void> {
    const dataDir = mkdtempSync(join(tmpdir(), `vecraft-serve-${role}-`));
    dirs.push(dataDir);
    // As in the image: VECRAFT_HOST=0.0.0.0 (ENV), flags after the role.
    const env = { ...cleanEnv(), VECRAFT_HOST: "0.0.0.0" };
    const server = await spawnServer(cli, ["serve", role, "--port", "0", "--data-dir", dataDir, "--log-level", "warn", ...args], env);
    const url = server.url.replace("0.0.0.0", "127.0.0.1");
    try {
      let status = 0;
      for (let i = 0; i < 300 && status !== 200; i++) {
        status = await fetch(`${url}/readyz`).then(
          (r) => r.status,
          () => 0,
        );
        if (status !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      expect(status, server.logs()).toBe(200);
      const exited = new Promise<number | null>((resolve) => server.child.once("exit", (code) => resolve(code)));
      server.child.kill("SIGTERM");
      expect(await exited, server.logs()).toBe(0);
      // The service (the entrypoint's child) is gone too: nothing answers on its port.
      await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    } finally {
      await server.kill9();
    }
  }

  it("serve standalone becomes ready and stops cleanly on SIGTERM", async () => {
    await readyThenSigterm("standalone", ["--partitions", "1"]);
  });

  it("serve journal becomes ready and stops cleanly on SIGTERM", async () => {
    await readyThenSigterm("journal", ["--partitions", "2"]);
  });
});

// ---- the Helm chart ----------------------------------------------------------------------

type Yaml = Record<string, unknown>;

const values = parseYaml(readFileSync(join(chartDir, "values.yaml"), "utf8")) as Yaml;
const templateFiles = readdirSync(join(chartDir, "templates")).sort();
const templates = new Map(templateFiles.map((f) => [f, readFileSync(join(chartDir, "templates", f), "utf8")]));
const helpers = templates.get("_helpers.tpl") ?? "";

function lookup(path: readonly string[]): { found: boolean; value: unknown } {
  let cur: unknown = values;
  for (const key of path) {
    if (cur === null || typeof cur !== "object" || !Object.hasOwn(cur, key)) return { found: false, value: undefined };
    cur = (cur as Yaml)[key];
  }
  return { found: true, value: cur };
}

/** The body of `{{- define "name" -}} ... {{- end -}}` in _helpers.tpl. */
function defineBody(name: string): string {
  const start = helpers.indexOf(`define "${name}"`);
  if (start < 0) throw new Error(`_helpers.tpl has no define "${name}"`);
  const end = helpers.indexOf("{{- end -}}", start);
  return helpers.slice(start, end);
}

interface ContainerArgs {
  readonly file: string;
  /** The first argument: a `vecraft serve` role, or a flag (etcd). */
  readonly first: string;
  /** Every `--flag` name passed, including those of included helpers. */
  readonly flags: Set<string>;
  /** The template expression of --port, e.g. `{{ int .Values.storage.port }}`. */
  readonly portExpr: string | undefined;
}

/** The `args:` lists of the templates' containers (list items indented under the key). */
function containerArgs(file: string, text: string): ContainerArgs[] {
  const lines = text.split("\n");
  const out: ContainerArgs[] = [];
  for (let i = 0; i < lines.length; i++) {
    const key = /^(\s*)args:\s*$/.exec(lines[i]!);
    if (!key) continue;
    const indent = key[1]!.length;
    const items: string[] = [];
    for (let j = i + 1; j < lines.length; j++) {
      const line = lines[j]!;
      if (line.trim() === "") continue;
      if (line.length - line.trimStart().length <= indent && !line.trimStart().startsWith("{{")) break;
      const include = /include "([^"]+)"/.exec(line);
      if (include && include[1] !== undefined && line.includes("--") === false) {
        items.push(...[...defineBody(include[1]).matchAll(/^- (.+)$/gm)].map((m) => m[1]!));
        continue;
      }
      const item = /^\s*- (.+)$/.exec(line);
      if (item) items.push(item[1]!);
    }
    const flags = new Set<string>();
    let portExpr: string | undefined;
    for (const item of items) {
      const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(item);
      if (!m) continue;
      flags.add(m[1]!);
      if (m[1] === "port") portExpr = m[2];
    }
    out.push({ file, first: items[0] ?? "", flags, portExpr });
  }
  return out;
}

const containers = [...templates].flatMap(([file, text]) => (file.endsWith(".yaml") ? containerArgs(file, text) : []));
const vecraftContainers = containers.filter((c) => c.first in ROLES);

describe("the Helm chart", () => {
  it("has a valid Chart.yaml and the documented defaults in values.yaml", () => {
    const chart = parseYaml(readFileSync(join(chartDir, "Chart.yaml"), "utf8")) as Yaml;
    expect(chart["apiVersion"]).toBe("v2");
    expect(chart["name"]).toBe("vecraft");
    expect(String(chart["version"])).toMatch(/^\d+\.\d+\.\d+/);
    expect(typeof chart["appVersion"]).toBe("string");
    expect(lookup(["storage", "replicas"]).value).toBe(3);
    expect(lookup(["query", "replicas"]).value).toBe(2);
    expect(lookup(["gateway", "replicas"]).value).toBe(2);
    expect(lookup(["journal", "partitions"]).value).toBe(3);
    expect([1, 3]).toContain(lookup(["etcd", "replicas"]).value);
    // Kubernetes must not SIGKILL a service that is still draining.
    expect(Number(lookup(["terminationGracePeriodSeconds"]).value) * 1000).toBeGreaterThan(
      Number(lookup(["shutdownGraceMs"]).value) + Number(lookup(["gateway", "preStopSleepSeconds"]).value) * 1000,
    );
  });

  it("uses only .Values paths that values.yaml defines", () => {
    const refs = new Set<string>();
    for (const text of templates.values()) {
      for (const m of text.matchAll(/\.Values((?:\.[A-Za-z0-9_]+)+)/g)) refs.add(m[1]!.slice(1));
    }
    expect(refs.size).toBeGreaterThan(30);
    const missing = [...refs].filter((r) => !lookup(r.split(".")).found);
    expect(missing).toEqual([]);
  });

  it("runs every cluster role once, with only flags its service accepts", () => {
    expect(vecraftContainers.map((c) => c.first).sort()).toEqual(["gateway", "journal", "meta-manager", "query", "storage"]);
    for (const c of vecraftContainers) {
      const help = helps.get(c.first as ServeRole)!;
      const unknown = [...c.flags].filter((f) => !help.flags.has(f));
      expect(unknown, `${c.file}: flags that \`vecraft serve ${c.first}\` does not accept`).toEqual([]);
    }
  });

  it("wires every flag the local launcher gives each role (services/cli/src/cluster/roles.ts)", () => {
    const plan = { name: "x-0", index: 0, nodeId: "x-0", port: 1, url: "http://127.0.0.1:1", dataDir: "/d" };
    const topology = {
      etcdEndpoints: ["http://e:2379"],
      metaUrl: "http://m",
      journalUrl: "http://j",
      queryUrls: ["http://q"],
      partitions: 3,
      logLevel: "info",
    };
    for (const c of vecraftContainers) {
      const key = ROLES[c.first as ServeRole];
      if (key === undefined) continue;
      const wanted = ROLE_FLAGS[key]({ ...plan, role: key }, topology).map((f) => f.name);
      // The node id is the pod name, through VECRAFT_NODE_ID (downward API) rather than a flag.
      const missing = wanted.filter((f) => !c.flags.has(f) && !(f === "node-id" && defineBody("vecraft.podEnv").includes("VECRAFT_NODE_ID")));
      expect(missing, `${c.file}: launcher flags the chart does not pass to ${c.first}`).toEqual([]);
    }
  });

  it("exposes each service on the port its --port flag gets, the service's default port", () => {
    for (const c of vecraftContainers) {
      expect(c.portExpr, `${c.file}: --port`).toBeDefined();
      const ports = [...templates.get(c.file)!.matchAll(/containerPort: (.+)$/gm)].map((m) => m[1]!.trim());
      expect(ports, c.file).toEqual([c.portExpr]);
      const path = /\.Values\.([A-Za-z0-9_.]+)/.exec(c.portExpr ?? "")?.[1];
      const port = lookup(path?.split(".") ?? []).value;
      expect(port, c.file).toBe(helps.get(c.first as ServeRole)!.defaultPort);
      // Probes and Services address the port by its name.
      expect(templates.get(c.file)).toMatch(/- name: http\n\s+containerPort:/);
      expect(templates.get(c.file)).toMatch(/targetPort: http\n/);
    }
    expect(defineBody("vecraft.probes")).toMatch(/path: \/healthz, port: http/);
    expect(defineBody("vecraft.probes")).toMatch(/path: \/readyz, port: http/);
  });

  it("passes etcd only flags etcd knows (checked against the local etcd when there is one)", (ctx) => {
    const etcd = containers.filter((c) => c.file === "etcd.yaml");
    expect(etcd).toHaveLength(1);
    let bin: string;
    try {
      bin = findEtcd(process.env);
    } catch {
      ctx.skip();
      return;
    }
    const help = spawnSync(bin, ["--help"], { encoding: "utf8" });
    const known = new Set([...`${help.stdout}${help.stderr}`.matchAll(/^\s+--([a-z0-9-]+)/gm)].map((m) => m[1]!));
    expect([...etcd[0]!.flags].filter((f) => !known.has(f))).toEqual([]);
  });

  it("builds an image whose entrypoint is `vecraft serve` and that exposes every service port", () => {
    const dockerfile = readFileSync(join(repoRoot, "deployment", "docker", "Dockerfile"), "utf8");
    expect(dockerfile).toContain('ENTRYPOINT ["node", "services/cli/dist/main.js", "serve"]');
    expect(dockerfile).toContain('CMD ["standalone"]');
    const exposed = new Set((/^EXPOSE (.+)$/m.exec(dockerfile)?.[1] ?? "").split(/\s+/).map(Number));
    for (const role of SERVE_ROLES) expect(exposed.has(helps.get(role)!.defaultPort!), role).toBe(true);
    // What the build copies from the context must not be ignored by .dockerignore.
    const ignored = readFileSync(join(repoRoot, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
    for (const needed of ["pnpm-lock.yaml", "pnpm-workspace.yaml", ".npmrc", "package.json", "services", "shared", "tsconfig.json"]) {
      expect(ignored, needed).not.toContain(needed);
      expect(dockerfile).toContain(needed === "services" || needed === "shared" || needed === "tsconfig.json" ? "COPY . ." : needed);
    }
  });
});
