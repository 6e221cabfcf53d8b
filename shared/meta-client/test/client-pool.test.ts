// ClientPool: one client per address, bounded by `max` (least recently used first) and
// by `retain`; `forget` makes the next call dial again.
import { describe, expect, it } from "vitest";
import { StorageService } from "@vecraft/rpc";
import { ClientPool } from "../src/index.js";

describe("ClientPool", () => {
  it("keeps one client per address, drops the least recently used past max, and forgets or retains on demand", () => {
    const made: string[] = [];
    const pool = new ClientPool(StorageService, {
      max: 2,
      make: (address) => {
        made.push(address);
        return { address } as unknown as ReturnType<ClientPool<typeof StorageService>["get"]>;
      },
    });
    const a = pool.get("http://a");
    expect(pool.get("http://a")).toBe(a);
    pool.get("http://b");
    pool.get("http://a"); // a is now the most recently used
    pool.get("http://c"); // drops b
    expect(pool.size).toBe(2);
    expect(pool.get("http://a")).toBe(a);
    pool.get("http://b");
    expect(made).toEqual(["http://a", "http://b", "http://c", "http://b"]);
    pool.forget("http://a");
    expect(pool.get("http://a")).not.toBe(a);
    pool.retain(["http://a"]);
    expect(pool.size).toBe(1);
  });
});
