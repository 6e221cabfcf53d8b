// etcd down in a real cluster (etcd, meta-manager, journal with 3 partitions, 3 storage
// nodes, 2 query processors, 2 gateways): the data path does not touch etcd, so upserts
// and SESSION / STRONG / BOUNDED reads go on through both gateways, for longer than a
// node lease; metadata changes fail with UNAVAILABLE saying the metadata store is
// unreachable; when etcd comes back (same data) they work again, and no shard replica
// moved because of the outage (the failover controller does not count leases that
// lapsed while the store was away).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ClusterStatus, CollectionSpec, VecraftClient } from "@vecraft/client";
import { fastFailover, metricSum, poll, randomRecords, startTestCluster, type TestCluster } from "../support/cluster.js";

const DIM = 8;
const LEASE_MS = 3_000;
/** etcd stays down at least this long (while traffic runs): longer than a node lease. */
const OUTAGE_MS = 2 * LEASE_MS + 1_000;

const spec = (name: string): CollectionSpec => ({ name, dimension: DIM, metric: "l2", shards: 4, replicationFactor: 2 });

let tc: TestCluster;
/** Clients that do not retry: a metadata change must fail, not wait for etcd. */
let ddl: VecraftClient;

const placements = (s: ClusterStatus): string[] => s.shardReplicas.map((r) => `${r.collection}/${r.shard}@${r.node}`).sort();

const failoverMoves = (): Promise<number> => metricSum(tc.cluster.endpoints.meta, "vecraft_meta_failover_moves_total");

async function expectUnavailable(what: string, call: () => Promise<unknown>): Promise<string> {
  let err: unknown;
  try {
    await call();
  } catch (e) {
    err = e;
  }
  expect(err, `${what} during the etcd outage`).toBeInstanceOf(ConnectError);
  const ce = err as ConnectError;
  expect(Code[ce.code], `${what}: ${ce.message}`).toBe(Code[Code.Unavailable]);
  expect(ce.rawMessage, what).toMatch(/metadata store/i);
  expect(ce.rawMessage, what).toMatch(/unreachable/i);
  expect(ce.rawMessage, what).toMatch(/etcd/);
  return ce.rawMessage;
}

beforeAll(async () => {
  tc = await startTestCluster({
    partitions: 3,
    storageNodes: 3,
    queryProcessors: 2,
    gateways: 2,
    // Failover as eager as in cluster-failover.test.ts: a wrong move would show soon.
    extraArgs: fastFailover(LEASE_MS),
  });
  ddl = tc.client(0, { retry: false });
  const [a] = tc.clients;
  await a!.createCollection(spec("docs"));
  await a!.createCollection(spec("spare"));
  const records = randomRecords(1_000, DIM, 1, "d");
  for (let i = 0; i < records.length; i += 500) await a!.upsert("docs", records.slice(i, i + 500));
}, 90_000);

afterAll(async () => {
  await tc?.stop();
});

describe("etcd stopped", () => {
  it("keeps reads and writes working, fails metadata changes with UNAVAILABLE, and recovers when etcd returns", async () => {
    const before = await poll("every replica serving before the outage", async () => {
      const s = await tc.clients[0]!.getClusterStatus();
      return s.shardReplicas.length === 16 && s.shardReplicas.every((r) => r.serving) ? s : undefined;
    });
    const movesBefore = await failoverMoves();

    await tc.stopEtcd();
    const stoppedAt = Date.now();

    // The data path, through both gateways, until etcd has been down longer than a lease.
    let rounds = 0;
    let writes = 0;
    let reads = 0;
    while (rounds < 3 || Date.now() - stoppedAt < OUTAGE_MS) {
      for (const [g, client] of tc.clients.entries()) {
        const batch = randomRecords(10, DIM, 100 + rounds * 2 + g, `o${rounds}-${g}-`);
        const w = await client.upsert("docs", batch);
        writes++;
        const ids = batch.map((r) => r.id);
        const session = await client.get("docs", ids, { consistency: { level: "session", sessionToken: w.sessionToken } });
        expect(session.missingIds, `round ${rounds} gateway ${g}: SESSION read of its own write`).toEqual([]);
        const own = await client.search("docs", batch[1]!.vector, { k: 1, consistency: { level: "session", sessionToken: w.sessionToken } });
        expect(own.hits[0]?.id, `round ${rounds} gateway ${g}: SESSION search of its own write`).toBe(ids[1]);
        const strong = await tc.clients[1 - g]!.search("docs", batch[3]!.vector, { k: 1, consistency: "strong" });
        expect(strong.hits[0]?.id, `round ${rounds}: STRONG search through the other gateway`).toBe(ids[3]);
        const bounded = await client.search("docs", batch[5]!.vector, { k: 5, consistency: "bounded" });
        expect(bounded.hits).toHaveLength(5);
        reads += 4;
      }
      rounds++;
    }

    const createMsg = await expectUnavailable("CreateCollection", () => ddl.createCollection(spec("during")));
    const dropMsg = await expectUnavailable("DropCollection", () => ddl.dropCollection("spare"));
    const outageMs = Date.now() - stoppedAt;

    await tc.startEtcd();
    const backAt = Date.now();
    // Metadata changes work again (the meta-manager notices etcd is back by itself).
    await poll("CreateCollection to succeed after etcd returned", () => ddl.createCollection(spec("after")), { timeoutMs: 60_000, everyMs: 500 });
    const recoverMs = Date.now() - backAt;
    await ddl.dropCollection("spare");
    const a = tc.clients[0]!;
    const fresh = randomRecords(50, DIM, 9, "a");
    await a.upsert("after", fresh);
    const hit = await tc.clients[1]!.search("after", fresh[17]!.vector, { k: 1, consistency: "strong" });
    expect(hit.hits[0]?.id).toBe("a17");

    // No replica of "docs" moved because of the outage: let the failover controller run past
    // its recovery grace (a lease TTL) and its grace, then compare.
    await poll("the failover controller's grace after etcd returned", () => (Date.now() - backAt > LEASE_MS + 1_000 ? true : undefined));
    const okPasses = (): Promise<number> => metricSum(tc.cluster.endpoints.meta, "vecraft_meta_failover_passes_total", { outcome: "ok" });
    const passesThen = await okPasses();
    await poll("two more failover passes", async () => ((await okPasses()) >= passesThen + 2 ? true : undefined), { timeoutMs: 30_000 });
    const after = await poll("every replica serving after the outage", async () => {
      const s = await a.getClusterStatus();
      const docs = s.shardReplicas.filter((r) => r.collection === "docs");
      return docs.length === 8 && docs.every((r) => r.serving) && s.nodes.every((n) => n.alive) ? s : undefined;
    });
    expect(placements({ ...after, shardReplicas: after.shardReplicas.filter((r) => r.collection === "docs") })).toEqual(
      placements({ ...before, shardReplicas: before.shardReplicas.filter((r) => r.collection === "docs") }),
    );
    expect(await failoverMoves()).toBe(movesBefore);

    console.log(
      `etcd outage: ${outageMs} ms down, ${writes} upserts and ${reads} reads ok during it; CreateCollection said "${createMsg.slice(0, 90)}...", DropCollection "${dropMsg.slice(0, 40)}..."; metadata changes back ${recoverMs} ms after etcd restarted`,
    );
  });

  it("had no process die on its own", () => {
    expect(tc.unexpectedExits.map((e) => `${e.name}: ${e.tail}`)).toEqual([]);
  });
});
