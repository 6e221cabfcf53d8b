// NodeHealth: the order nodes are tried in (catalog liveness, recent failures with
// exponential cool-downs, rotation) and what counts as a connection failure.
import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { NodeRole, RegisteredNodeSchema, type RegisteredNode } from "@vecraft/rpc";
import { NodeHealth, isConnectionFailure } from "../src/index.js";

const node = (id: string, alive = true): RegisteredNode => create(RegisteredNodeSchema, { id, address: `http://${id}`, alive, roles: [NodeRole.STORAGE] });

describe("NodeHealth.order", () => {
  it("rotates healthy replicas, tries a failed one last until its cool-down passes, and doubles the cool-down", () => {
    let now = 0;
    const h = new NodeHealth({ baseCooldownMs: 1000, maxCooldownMs: 3000, now: () => now });
    const nodes = new Map(["a", "b", "c"].map((id) => [id, node(id)]));
    const order = (turn: number): string[] => h.order(["a", "b", "c"], (id) => nodes.get(id), turn).map((r) => r.node);
    expect(order(0)).toEqual(["a", "b", "c"]);
    expect(order(1)).toEqual(["b", "c", "a"]);
    h.failed("b");
    for (let turn = 0; turn < 4; turn++) expect(order(turn).at(-1)).toBe("b");
    expect(new Set(order(0).slice(0, 2))).toEqual(new Set(["a", "c"]));
    now = 1000;
    expect(order(1)).toEqual(["b", "c", "a"]);
    // A second failure in a row: twice the cool-down.
    h.failed("b");
    now = 2999;
    expect(order(1).at(-1)).toBe("b");
    now = 3000;
    expect(order(1)).toEqual(["b", "c", "a"]);
    // Capped, and a success forgets the failures.
    h.failed("b");
    h.failed("b");
    expect(h.failures("b")).toBe(4);
    now = 5999;
    expect(order(1).at(-1)).toBe("b");
    h.succeeded("b");
    expect(order(1)).toEqual(["b", "c", "a"]);
    // Among cooling nodes, the one that recovers first goes first.
    h.failed("c");
    now += 10;
    h.failed("a");
    expect(order(0)).toEqual(["b", "c", "a"]);
  });

  it("skips nodes that are dead or unregistered, unless no alive one is left", () => {
    const h = new NodeHealth();
    const nodes = new Map([
      ["a", node("a", false)],
      ["b", node("b")],
    ]);
    const of = (id: string): RegisteredNode | undefined => nodes.get(id);
    expect(h.order(["a", "b", "x"], of, 0).map((r) => r.node)).toEqual(["b"]);
    nodes.set("b", node("b", false));
    // The catalog may be stale: a listed node is better than no answer.
    expect(h.order(["a", "b", "x"], of, 0).map((r) => r.node)).toEqual(["a", "b"]);
    expect(h.order(["x"], of, 0)).toEqual([]);
  });
});

describe("isConnectionFailure", () => {
  it("tells a failure of the connection from an answer of the server", () => {
    const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
    expect(isConnectionFailure(new ConnectError("read ECONNRESET", Code.Aborted, undefined, undefined, reset))).toBe(true);
    expect(isConnectionFailure(new ConnectError("http/2 stream closed with error code CANCEL (0x8)", Code.Canceled))).toBe(true);
    expect(isConnectionFailure(new ConnectError("replica bootstrapping", Code.Unavailable))).toBe(false);
    expect(isConnectionFailure(new ConnectError("wrapped", Code.Internal, undefined, undefined, new ConnectError("inner", Code.Internal)))).toBe(false);
  });
});
