import { describe, expect, expectTypeOf, it } from "vitest";
import {
  ConfigError,
  defineConfig,
  formatConfigHelp,
  isHelpRequested,
  loadConfig,
  parseBytes,
  parseDuration,
  redactConfig,
  registrationFields,
} from "../src/index.js";
import type { ConfigIssue } from "../src/index.js";

const schema = defineConfig({
  port: { type: "int", default: 8080, min: 0, max: 65535, env: "VECRAFT_PORT", flag: "port", doc: "Port to listen on." },
  host: { type: "string", default: "127.0.0.1", env: "VECRAFT_HOST", doc: "Interface to bind." },
  dataDir: { type: "string", nonEmpty: true, env: "VECRAFT_DATA_DIR", doc: "Where data lives." },
  tickIntervalMs: { type: "duration", default: "50ms", min: 1, env: "VECRAFT_TICK_INTERVAL", doc: "Idle tick period." },
  segmentBytes: { type: "bytes", default: "64MiB", env: "VECRAFT_SEGMENT_BYTES", doc: "Segment size." },
  fsync: { type: "bool", default: true, env: "VECRAFT_FSYNC", doc: "fdatasync on commit." },
  ratio: { type: "number", default: 0.5, min: 0, max: 1, doc: "A fraction." },
  role: { type: "enum", values: ["journal", "storage"], default: "journal", env: "VECRAFT_ROLE", doc: "Process role." },
  peers: { type: "stringList", default: [], env: "VECRAFT_PEERS", doc: "Peer addresses." },
  apiKey: { type: "string", optional: true, secret: true, env: "VECRAFT_API_KEY", doc: "Admin key." },
});

const noFile = (): string => {
  throw new Error("no file expected");
};

function issuesOf(fn: () => unknown): readonly ConfigIssue[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("resolves defaults with normalized units, typed and deeply frozen", () => {
    const c = loadConfig(schema, { argv: ["--data-dir", "/d"], env: {}, readFile: noFile });
    expect(c).toEqual({
      port: 8080,
      host: "127.0.0.1",
      dataDir: "/d",
      tickIntervalMs: 50,
      segmentBytes: 64 * 1024 * 1024,
      fsync: true,
      ratio: 0.5,
      role: "journal",
      peers: [],
      apiKey: undefined,
    });
    expectTypeOf(c.port).toEqualTypeOf<number>();
    expectTypeOf(c.role).toEqualTypeOf<"journal" | "storage">();
    expectTypeOf(c.peers).toEqualTypeOf<readonly string[]>();
    expectTypeOf(c.apiKey).toEqualTypeOf<string | undefined>();
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.peers)).toBe(true);
    expect(() => {
      (c as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it("applies defaults < config file < environment < flags", () => {
    const file = JSON.stringify({ port: 1000, host: "10.0.0.1", dataDir: "/file", tickIntervalMs: "2s", peers: ["a", "b"] });
    const reads: string[] = [];
    const readFile = (p: string): string => {
      reads.push(p);
      return file;
    };
    const env = { VECRAFT_PORT: "2000", VECRAFT_HOST: "10.0.0.2", VECRAFT_CONFIG: "/etc/vecraft.json", VECRAFT_PEERS: "c, d," };
    const c = loadConfig(schema, { argv: ["--port=3000", "--no-fsync", "--segment-bytes", "1KiB"], env, readFile });
    expect(reads).toEqual(["/etc/vecraft.json"]);
    expect(c.port).toBe(3000); // flag over env over file
    expect(c.host).toBe("10.0.0.2"); // env over file
    expect(c.dataDir).toBe("/file"); // file over (no) default
    expect(c.tickIntervalMs).toBe(2000); // file over default
    expect(c.peers).toEqual(["c", "d"]); // env over file, comma-separated
    expect(c.fsync).toBe(false);
    expect(c.segmentBytes).toBe(1024);
  });

  it("takes the config file from --config before VECRAFT_CONFIG before options.configFile", () => {
    const seen: string[] = [];
    const readFile = (p: string): string => {
      seen.push(p);
      return JSON.stringify({ dataDir: p });
    };
    loadConfig(schema, { argv: ["--config", "/flag.json"], env: { VECRAFT_CONFIG: "/env.json" }, configFile: "/opt.json", readFile });
    loadConfig(schema, { argv: [], env: { VECRAFT_CONFIG: "/env.json" }, configFile: "/opt.json", readFile });
    loadConfig(schema, { argv: [], env: {}, configFile: "/opt.json", readFile });
    expect(seen).toEqual(["/flag.json", "/env.json", "/opt.json"]);
  });

  it("treats an empty environment variable as unset", () => {
    const c = loadConfig(schema, { argv: ["--data-dir=/d"], env: { VECRAFT_PORT: "" }, readFile: noFile });
    expect(c.port).toBe(8080);
  });

  it("reports every bad key with its source and the expected type", () => {
    const readFile = (): string => JSON.stringify({ port: "eighty", typo: 1, ratio: 2 });
    const env = { VECRAFT_CONFIG: "/c.json", VECRAFT_TICK_INTERVAL: "soon", VECRAFT_ROLE: "gateway", VECRAFT_FSYNC: "maybe" };
    const issues = issuesOf(() => loadConfig(schema, { argv: ["--port", "70000", "--bogus", "x", "extra"], env, readFile }));
    const summary = issues.map((i) => `${i.key}@${i.source}:${i.origin}`);
    expect(summary).toEqual(
      expect.arrayContaining([
        "port@file:/c.json",
        "port@flag:--port",
        "typo@file:/c.json",
        "ratio@file:/c.json",
        "tickIntervalMs@env:VECRAFT_TICK_INTERVAL",
        "role@env:VECRAFT_ROLE",
        "fsync@env:VECRAFT_FSYNC",
        "--bogus@flag:--bogus",
        "x@flag:x",
        "extra@flag:extra",
        "dataDir@default:",
      ]),
    );
    expect(issues.find((i) => i.source === "flag" && i.key === "port")).toMatchObject({
      value: "70000",
      expected: "an integer in [0, 65535]",
    });
    expect(issues.find((i) => i.key === "role")?.expected).toBe("one of journal, storage");

    let message = "";
    try {
      loadConfig(schema, { argv: ["--port", "abc"], env: {}, readFile: noFile });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('port (flag --port): expected an integer in [0, 65535], got "abc"');
    expect(message).toContain("dataDir (default): expected a value (required; set --data-dir, VECRAFT_DATA_DIR, the config file)");
  });

  it("rejects a missing flag value, a bad file and a non-object file", () => {
    expect(issuesOf(() => loadConfig(schema, { argv: ["--data-dir"], env: {} }))[0]).toMatchObject({
      key: "dataDir",
      source: "flag",
    });
    const bad = issuesOf(() => loadConfig(schema, { argv: ["--data-dir=/d"], env: {}, configFile: "/x", readFile: () => "{nope" }));
    expect(bad[0]).toMatchObject({ source: "file", origin: "/x", expected: "valid JSON" });
    const arr = issuesOf(() => loadConfig(schema, { argv: ["--data-dir=/d"], env: {}, configFile: "/x", readFile: () => "[1]" }));
    expect(arr[0]).toMatchObject({ expected: "a JSON object" });
    const missing = issuesOf(() => loadConfig(schema, { argv: ["--data-dir=/d"], env: {}, configFile: "/does/not/exist.json" }));
    expect(missing[0]).toMatchObject({ source: "file", expected: "a readable file" });
  });

  it("never echoes a secret's value", () => {
    const s = defineConfig({ token: { type: "int", secret: true, env: "T", doc: "a secret number" } });
    const issues = issuesOf(() => loadConfig(s, { env: { T: "hunter2" } }));
    expect(issues[0]?.value).toBe("<secret>");
    const ok = loadConfig(s, { env: { T: "42" } });
    expect(redactConfig(s, ok)).toEqual({ token: "<redacted>" });
  });

  it("checks the schema itself", () => {
    expect(() => defineConfig({ a: { type: "enum", values: ["x"], default: "y", doc: "" } })).toThrow(ConfigError);
    expect(() => defineConfig({ a: { type: "duration", default: "fast", doc: "" } })).toThrow(ConfigError);
    expect(() =>
      defineConfig({ a: { type: "int", flag: "x", doc: "" }, b: { type: "int", flag: "x", doc: "" } }),
    ).toThrow(/flag name used once/);
    expect(() => defineConfig({ config: { type: "string", doc: "" } })).toThrow(ConfigError);
  });
});

describe("registrationFields", () => {
  it("gives every registering service the same node id, advertise URL and lease flags", () => {
    const schema = defineConfig({ port: { type: "int", default: 1, doc: "Port." }, ...registrationFields("query-0", "query processor") });
    const noFile = (): string => {
      throw new Error("no file");
    };
    expect(loadConfig(schema, { argv: [], env: {}, readFile: noFile })).toMatchObject({ nodeId: "query-0", advertiseUrl: "", leaseTtlMs: 10_000 });
    const c = loadConfig(schema, { argv: ["--advertise-url=http://q:1", "--lease-ttl-ms=3s"], env: { VECRAFT_NODE_ID: "query-7" }, readFile: noFile });
    expect(c).toMatchObject({ nodeId: "query-7", advertiseUrl: "http://q:1", leaseTtlMs: 3_000 });
    expectTypeOf(c.leaseTtlMs).toEqualTypeOf<number>();
    expect(() => loadConfig(schema, { argv: ["--lease-ttl-ms=10ms"], env: {}, readFile: noFile })).toThrow(ConfigError);
    expect(formatConfigHelp(schema, "x")).toMatch(/--node-id <string> +This query processor's node id/);
  });
});

describe("help", () => {
  it("lists every flag with its env, type, default and doc", () => {
    const help = formatConfigHelp(schema, "vecraft-journal");
    expect(help).toContain("vecraft-journal");
    expect(help).toMatch(/--port <int>\s+Port to listen on\./);
    expect(help).toContain("an integer in [0, 65535]; env VECRAFT_PORT; default 8080");
    expect(help).toContain("--[no-]fsync ");
    expect(help).toContain("env VECRAFT_DATA_DIR; required");
    expect(help).toContain("a string; env VECRAFT_API_KEY; optional");
    expect(help).toContain("--config <path>");
  });

  it("detects --help before the -- terminator", () => {
    expect(isHelpRequested(["--port", "1", "--help"])).toBe(true);
    expect(isHelpRequested(["-h"])).toBe(true);
    expect(isHelpRequested(["--", "--help"])).toBe(false);
    expect(isHelpRequested([])).toBe(false);
  });
});

describe("units", () => {
  it.each([
    ["50", 50],
    ["50ms", 50],
    ["2s", 2000],
    ["1.5s", 1500],
    ["1m30s", 90_000],
    ["1h", 3_600_000],
    [" 2d ", 172_800_000],
  ])("parseDuration(%j) = %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "ms", "-5ms", "5 parsecs", "1.s", "2s junk", "1e3"])("parseDuration(%j) is not a duration", (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  it.each([
    ["512", 512],
    ["512B", 512],
    ["64KiB", 65_536],
    ["64kib", 65_536],
    ["1MiB", 1_048_576],
    ["1.5KiB", 1536],
    ["2GiB", 2 * 1024 ** 3],
    ["1MB", 1_000_000],
    ["1 KB", 1000],
  ])("parseBytes(%j) = %d", (text, bytes) => {
    expect(parseBytes(text)).toBe(bytes);
  });

  it.each(["", "KiB", "-1KiB", "1.3B", "1XiB", "1e3"])("parseBytes(%j) is not a size", (text) => {
    expect(parseBytes(text)).toBeUndefined();
  });

  it("accepts numbers from a config file as ms and bytes", () => {
    const s = defineConfig({
      d: { type: "duration", default: 0, doc: "" },
      b: { type: "bytes", default: 0, doc: "" },
      l: { type: "stringList", default: ["x"], doc: "" },
    });
    const c = loadConfig(s, { env: {}, configFile: "/f", readFile: () => JSON.stringify({ d: 250, b: 4096, l: "p,q" }) });
    expect(c).toEqual({ d: 250, b: 4096, l: ["p", "q"] });
  });
});
