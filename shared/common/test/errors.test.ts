import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  AbortedError,
  AlreadyExistsError,
  DataLossError,
  DeadlineExceededError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  LEADER_HINT_HEADER,
  NotFoundError,
  OutOfRangeError,
  ResourceExhaustedError,
  UnavailableError,
  VecraftError,
  errorDetailsOf,
  isRetryable,
  isVecraftError,
  toConnectError,
} from "../src/index.js";

function systemError(code: string, message = `${code}: something at /secret/path`): Error {
  return Object.assign(new Error(message), { code, syscall: "write" });
}

describe("VecraftError hierarchy", () => {
  it.each([
    [new InvalidArgumentError("x"), Code.InvalidArgument, false],
    [new NotFoundError("x"), Code.NotFound, false],
    [new AlreadyExistsError("x"), Code.AlreadyExists, false],
    [new FailedPreconditionError("x"), Code.FailedPrecondition, false],
    [new AbortedError("x"), Code.Aborted, false],
    [new UnavailableError("x"), Code.Unavailable, true],
    [new ResourceExhaustedError("x"), Code.ResourceExhausted, true],
    [new DeadlineExceededError("x"), Code.DeadlineExceeded, false],
    [new OutOfRangeError("x"), Code.OutOfRange, false],
    [new DataLossError("x"), Code.DataLoss, false],
    [new InternalError("x"), Code.Internal, false],
  ])("%s has its code and retryability", (e, code, retryable) => {
    expect(e).toBeInstanceOf(VecraftError);
    expect(e).toBeInstanceOf(Error);
    expect(e.code).toBe(code);
    expect(e.retryable).toBe(retryable);
    expect(isRetryable(e)).toBe(retryable);
    expect(e.name).toBe(e.constructor.name);
  });

  it("lets the thrower override retryability and keeps the cause", () => {
    const cause = new Error("cas lost");
    const e = new AbortedError("epoch conflict", { retryable: true, cause });
    expect(e.retryable).toBe(true);
    expect(e.cause).toBe(cause);
  });

  it("recognises errors from another copy of the package by their brand", () => {
    const foreign = Object.assign(new Error("x"), { code: Code.NotFound, retryable: false });
    Object.defineProperty(foreign, Symbol.for("@vecraft/common/VecraftError"), { value: true });
    expect(isVecraftError(foreign)).toBe(true);
    expect(isVecraftError(new Error("x"))).toBe(false);
    expect(toConnectError(foreign).code).toBe(Code.NotFound);
  });
});

describe("toConnectError", () => {
  it("passes a ConnectError through unchanged", () => {
    const ce = new ConnectError("nope", Code.PermissionDenied);
    expect(toConnectError(ce)).toBe(ce);
  });

  it("keeps a VecraftError's code and message and sends its details as metadata", () => {
    const e = new FailedPreconditionError("not the leader", { leaderHint: "journal-2:7001", details: { partition: 3 } });
    const ce = toConnectError(e);
    expect(ce.code).toBe(Code.FailedPrecondition);
    expect(ce.rawMessage).toBe("not the leader");
    expect(ce.cause).toBe(e);
    expect(ce.metadata.get(LEADER_HINT_HEADER)).toBe("journal-2:7001");
    expect(errorDetailsOf(ce)).toEqual({ "leader-hint": "journal-2:7001", partition: "3" });
    expect(e.leaderHint).toBe("journal-2:7001");
  });

  it("walks the cause chain to the first error that says something", () => {
    const wrapped = new Error("append failed", { cause: new Error("io", { cause: new NotFoundError("no collection") }) });
    expect(toConnectError(wrapped)).toMatchObject({ code: Code.NotFound, rawMessage: "no collection" });

    // An explicit typed error wins over the system error it wraps.
    const typed = new InternalError("segment write failed", { cause: systemError("ENOSPC") });
    expect(toConnectError(typed).code).toBe(Code.Internal);

    // A ConnectError from a downstream call keeps its code when wrapped.
    const downstream = new Error("fan-out", { cause: new ConnectError("peer down", Code.Unavailable) });
    expect(toConnectError(downstream).code).toBe(Code.Unavailable);
  });

  it.each([
    ["ENOSPC", Code.ResourceExhausted, false],
    ["ECONNREFUSED", Code.Unavailable, true],
    ["ECONNRESET", Code.Unavailable, true],
    ["EIO", Code.Internal, false],
    ["SQLITE_BUSY", Code.Unavailable, true],
    ["SQLITE_BUSY_SNAPSHOT", Code.Unavailable, true],
    ["SQLITE_CORRUPT", Code.DataLoss, false],
  ])("maps %s, without leaking its message", (code, expected, retryable) => {
    const e = new Error("while appending", { cause: systemError(code) });
    const ce = toConnectError(e);
    expect(ce.code).toBe(expected);
    expect(ce.rawMessage).not.toContain("/secret/path");
    expect(ce.cause).toBe(e);
    expect(isRetryable(e)).toBe(retryable);
  });

  it("maps aborts and timeouts", () => {
    expect(toConnectError(new DOMException("aborted", "AbortError")).code).toBe(Code.Canceled);
    expect(toConnectError(new DOMException("timed out", "TimeoutError")).code).toBe(Code.DeadlineExceeded);
    const controller = new AbortController();
    controller.abort();
    expect(toConnectError(controller.signal.reason).code).toBe(Code.Canceled);
    expect(isRetryable(controller.signal.reason)).toBe(false);
  });

  it("turns anything else into Internal with a generic message", () => {
    for (const e of [new Error("secret detail"), new TypeError("x is undefined"), "a string", 42, undefined, null]) {
      const ce = toConnectError(e);
      expect(ce.code).toBe(Code.Internal);
      expect(ce.rawMessage).toBe("internal error");
      expect(ce.cause).toBe(e);
      expect(isRetryable(e)).toBe(false);
    }
  });

  it("survives a cyclic cause chain", () => {
    const a = new Error("a");
    const b = new Error("b", { cause: a });
    a.cause = b;
    expect(toConnectError(a).code).toBe(Code.Internal);
  });

  it("treats Unavailable and ResourceExhausted ConnectErrors as retryable", () => {
    expect(isRetryable(new ConnectError("x", Code.Unavailable))).toBe(true);
    expect(isRetryable(new ConnectError("x", Code.ResourceExhausted))).toBe(true);
    expect(isRetryable(new ConnectError("x", Code.Aborted))).toBe(false);
    expect(isRetryable(new ConnectError("x", Code.InvalidArgument))).toBe(false);
  });
});
