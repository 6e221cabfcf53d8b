import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { NotFoundError, createLogger, silentLogger } from "../src/index.js";
import type { Logger, LoggerOptions } from "../src/index.js";

interface Captured {
  logger: Logger;
  raw: string[];
  lines: () => Record<string, unknown>[];
}

function capture(options: Partial<LoggerOptions> = {}): Captured {
  const raw: string[] = [];
  const logger = createLogger({
    name: "journal",
    clock: () => Date.UTC(2025, 0, 2, 3, 4, 5, 678),
    env: {},
    stream: { write: (s: string) => raw.push(s) },
    ...options,
  });
  return { logger, raw, lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("createLogger", () => {
  it("writes one JSON object per line with time, level, name, msg and fields", () => {
    const out = capture();
    out.logger.info("appended", { partition: 3, offset: 42 });
    expect(out.raw).toHaveLength(1);
    expect(out.raw[0]?.endsWith("\n")).toBe(true);
    expect(out.raw[0]?.indexOf("\n")).toBe(out.raw[0]!.length - 1);
    expect(out.lines()[0]).toEqual({
      time: "2025-01-02T03:04:05.678Z",
      level: "info",
      name: "journal",
      msg: "appended",
      partition: 3,
      offset: 42,
    });
    expect(Object.keys(out.lines()[0]!).slice(0, 4)).toEqual(["time", "level", "name", "msg"]);
  });

  it("filters by level, from the option or VECRAFT_LOG_LEVEL", () => {
    const out = capture({ level: "warn" });
    out.logger.debug("d");
    out.logger.info("i");
    out.logger.warn("w");
    out.logger.error("e");
    expect(out.lines().map((l) => l["level"])).toEqual(["warn", "error"]);
    expect(out.logger.isLevelEnabled("info")).toBe(false);

    const b = capture({ env: { VECRAFT_LOG_LEVEL: "DEBUG" } });
    b.logger.debug("d");
    expect(b.lines().map((l) => l["level"])).toEqual(["debug"]);
    expect(b.logger.level).toBe("debug");
  });

  it("warns once about an invalid VECRAFT_LOG_LEVEL and uses info", () => {
    const out = capture({ env: { VECRAFT_LOG_LEVEL: "loud" } });
    out.logger.debug("hidden");
    expect(out.lines()).toMatchObject([{ level: "warn", msg: "ignoring invalid VECRAFT_LOG_LEVEL", value: "loud" }]);
    expect(out.logger.level).toBe("info");
  });

  it("serialises errors with name, message, code, stack and cause", () => {
    const out = capture();
    const cause = Object.assign(new Error("disk full"), { code: "ENOSPC" });
    out.logger.error("append failed", {
      error: new NotFoundError("no such collection", { cause }),
      rpc: new ConnectError("down", Code.Unavailable),
    });
    const line = out.lines()[0]!;
    expect(line["error"]).toMatchObject({
      name: "NotFoundError",
      message: "no such collection",
      code: "NotFound",
      cause: { name: "Error", message: "disk full", code: "ENOSPC" },
    });
    expect(String((line["error"] as Record<string, unknown>)["stack"])).toContain("NotFoundError: no such collection");
    expect(line["rpc"]).toMatchObject({ name: "ConnectError", code: "Unavailable" });
  });

  it("child loggers add fields; bigint, cycles and envelope clashes are safe", () => {
    const out = capture();
    const child = out.logger.child({ partition: 1 }).child({ replica: "r2" });
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic["self"] = cyclic;
    child.warn("odd", { ts: 123n << 20n, cyclic, msg: "shadow", bytes: new Uint8Array(4) });
    expect(out.lines()[0]).toEqual({
      time: "2025-01-02T03:04:05.678Z",
      level: "warn",
      name: "journal",
      msg: "odd",
      partition: 1,
      replica: "r2",
      ts: String(123n << 20n),
      cyclic: { a: 1, self: "[Circular]" },
      field_msg: "shadow",
      bytes: "<4 bytes>",
    });
  });

  it("silentLogger writes nothing and its children are silent", () => {
    expect(() => silentLogger.child({ a: 1 }).error("x", { b: 2 })).not.toThrow();
    expect(silentLogger.isLevelEnabled("error")).toBe(false);
  });
});
