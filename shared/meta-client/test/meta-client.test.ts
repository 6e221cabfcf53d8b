// CatalogFollower and keepRegistered against an in-process MetaService (Connect router
// transport): what they do when the meta-manager answers, changes and goes away.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { createLogger } from "@vecraft/common";
const silentLogger = createLogger({ name: "t", level: "warn", stream: process.stderr });
import { CatalogCollectionSchema, CatalogSchema, MetaService, NodeRole, type Catalog } from "@vecraft/rpc";
import { describe, expect, it } from "vitest";
import { CatalogFollower, keepRegistered } from "../src/index.js";

function catalog(revision: number, names: string[]): Catalog {
  return create(CatalogSchema, {
    revision: BigInt(revision),
    collections: names.map((name) => create(CatalogCollectionSchema, { collection: { name }, uid: `${name}-uid` })),
  });
}

/** A fake meta-manager whose catalog and availability the test controls. */
function fakeMeta() {
  const state = {
    catalog: catalog(1, ["a"]),
    down: false,
    gets: 0,
    /** Resolvers of open watch streams waiting for a change. */
    waiters: new Set<() => void>(),
    registers: 0,
    heartbeats: [] as string[],
    heartbeatFails: 0,
    leaseAlive: true,
  };
  const transport = createRouterTransport(({ service }) => {
    service(MetaService, {
      getCatalog() {
        if (state.down) throw new ConnectError("meta-manager down", Code.Unavailable);
        state.gets++;
        return { catalog: state.catalog };
      },
      async *watchCatalog(req, ctx) {
        if (state.down) throw new ConnectError("meta-manager down", Code.Unavailable);
        let after = req.afterRevision;
        for (;;) {
          if (state.down) throw new ConnectError("meta-manager down", Code.Unavailable);
          if (state.catalog.revision > after) {
            after = state.catalog.revision;
            yield { catalog: state.catalog };
            continue;
          }
          await new Promise<void>((resolve) => {
            state.waiters.add(resolve);
            ctx.signal.addEventListener("abort", () => resolve(), { once: true });
          });
          if (ctx.signal.aborted) return;
        }
      },
      registerNode() {
        state.registers++;
        state.leaseAlive = true;
        return { leaseId: `lease-${state.registers}` };
      },
      heartbeat(req) {
        if (state.heartbeatFails > 0) {
          state.heartbeatFails--;
          throw new ConnectError("etcd unreachable", Code.Unavailable);
        }
        state.heartbeats.push(req.leaseId);
        return { alive: state.leaseAlive };
      },
    });
  });
  const wake = (): void => {
    for (const w of state.waiters) w();
    state.waiters.clear();
  };
  return {
    state,
    client: createClient(MetaService, transport),
    publish(c: Catalog): void {
      state.catalog = c;
      wake();
    },
    setDown(down: boolean): void {
      state.down = down;
      wake();
    },
  };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("CatalogFollower", () => {
  it("loads, follows changes, and finds a new collection by re-reading on a miss", async () => {
    const meta = fakeMeta();
    const f = new CatalogFollower(meta.client, silentLogger);
    try {
      expect((await f.load()).revision).toBe(1n);
      const seen: bigint[] = [];
      f.onChange((c) => seen.push(c.revision));
      meta.publish(catalog(2, ["a", "b"]));
      await until(() => f.current?.revision === 2n, "revision 2");
      expect(seen).toContain(2n);
      expect((await f.collection("b")).uid).toBe("b-uid");
      // Changed without the watch noticing (it is parked): a miss re-reads.
      meta.state.catalog = catalog(3, ["a", "b", "c"]);
      expect((await f.collection("c")).uid).toBe("c-uid");
      await expect(f.collection("zzz")).rejects.toThrow(/collection "zzz" does not exist/);
    } finally {
      await f.close();
    }
  });

  it("keeps serving the cached catalog while the meta-manager is down, and catches up after", async () => {
    const meta = fakeMeta();
    const f = new CatalogFollower(meta.client, silentLogger);
    try {
      await f.load();
      await until(() => f.watching, "the watch to open");
      meta.setDown(true);
      await until(() => !f.watching, "the watch to break");
      expect((await f.collection("a")).uid).toBe("a-uid");
      await expect(f.collection("missing")).rejects.toMatchObject({ code: Code.Unavailable });
      meta.state.catalog = catalog(5, ["a", "later"]);
      meta.setDown(false);
      await until(() => f.current?.revision === 5n, "the catalog after the outage");
      expect((await f.collection("later")).uid).toBe("later-uid");
    } finally {
      await f.close();
    }
  });
});

describe("keepRegistered", () => {
  it("heartbeats the same lease through failures and registers again when the lease is gone", async () => {
    const meta = fakeMeta();
    meta.state.heartbeatFails = 2;
    const reg = keepRegistered(meta.client, { id: "query-0", address: "http://127.0.0.1:1", roles: [NodeRole.QUERY_PROCESSOR] }, 150, silentLogger);
    try {
      await until(() => meta.state.heartbeats.length >= 2, "heartbeats after the failures");
      expect(meta.state.registers).toBe(1);
      expect(new Set(meta.state.heartbeats)).toEqual(new Set(["lease-1"]));
      expect(reg.registered).toBe(true);
      meta.state.leaseAlive = false;
      await until(() => meta.state.registers === 2, "a second registration");
      await until(() => meta.state.heartbeats.includes("lease-2"), "heartbeats on the new lease");
    } finally {
      await reg.stop();
    }
  });
});
