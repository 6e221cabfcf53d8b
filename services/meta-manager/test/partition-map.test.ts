// The journal partition map: the pure planning rule, then the controller inside a real
// meta-manager (start()) over the embedded store, asking a JournalService stub served over
// real gRPC on 127.0.0.1 (a restart is the stub stopped and started again on the same
// port in a new epoch, what a real journal does when it reopens its partitions). An
// unreachable store is FlakyStore (calls fail UNAVAILABLE, like etcd down).
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger, startRpcServer, type RpcServer } from "@vecraft/common";
import { GetPartitionsResponseSchema, JournalService, NodeRole, type Catalog as CatalogMessage } from "@vecraft/rpc";
import { loadMetaConfig, planPartitionMap, start, type RunningMeta } from "../src/index.js";
import { FakeJournal } from "./fake-journal.js";
import { FlakyStore, eventually, testStore, type TestStore } from "./helpers.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const signal = (): AbortSignal => AbortSignal.timeout(20_000);
const PARTITIONS = 3;

/** A journal node answering GetPartitions for every partition in `epoch`; restart() reopens it on the same port in the next epoch. */
class StubJournal {
  epoch = 1;
  calls = 0;
  private server: RpcServer | undefined;
  private port = 0;

  constructor(private readonly nodeId: string) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = await startRpcServer({
      routes: (router) => {
        router.service(JournalService, {
          getPartitions: () => {
            this.calls++;
            return create(GetPartitionsResponseSchema, {
              nodeId: this.nodeId,
              partitions: Array.from({ length: PARTITIONS }, (_, p) => ({ partition: p, epoch: this.epoch, commitOffset: 1n, serving: true })),
            });
          },
        });
      },
      host: "127.0.0.1",
      port: this.port,
      logger: silentLogger,
      ready: () => true,
    });
    this.port = this.server.port;
  }

  async stop(): Promise<void> {
    await this.server?.close(0);
    this.server = undefined;
  }

  async restart(): Promise<void> {
    await this.stop();
    this.epoch++;
    await this.start();
  }
}

interface Setup {
  running: RunningMeta;
  t: TestStore;
  flaky: FlakyStore;
  registry: Registry;
  journal: StubJournal;
  registerJournal(): Promise<void>;
  catalog(): Promise<CatalogMessage>;
  changes(kind: string): Promise<number>;
  passes(outcome: string): Promise<number>;
}

async function setup(): Promise<Setup> {
  const t = await testStore();
  cleanups.push(() => t.cleanup());
  const flaky = new FlakyStore(t.store);
  const journal = new StubJournal("journal-0");
  await journal.start();
  cleanups.push(() => journal.stop());
  const registry = new Registry();
  const argv = ["--port", "0", "--partitions", String(PARTITIONS), "--watch-coalesce-ms", "0", "--reconcile-interval-ms", "0"];
  argv.push("--journal-url", "http://journal.test:7100", "--failover-interval-ms", "60s", "--partition-map-interval-ms", "60s");
  const running = await start(loadMetaConfig({ argv, env: {} }), { logger: silentLogger, registry, store: flaky, clock: t.clock, journal: new FakeJournal(PARTITIONS).client() });
  cleanups.push(() => running.stop());
  const metric = async (name: string, label: string, value: string): Promise<number> =>
    (await registry.getSingleMetric(name)?.get())?.values.find((v) => v.labels[label] === value)?.value ?? 0;
  return {
    running,
    t,
    flaky,
    registry,
    journal,
    async registerJournal() {
      await running.catalog.registerNode({ id: "journal-0", roles: [NodeRole.JOURNAL], address: journal.url }, 60_000, signal());
    },
    catalog: () => running.catalog.getCatalog(signal()),
    changes: (kind) => metric("vecraft_meta_partition_map_changes_total", "kind", kind),
    passes: (outcome) => metric("vecraft_meta_partition_map_passes_total", "outcome", outcome),
  };
}

const mapOf = (c: CatalogMessage): [number, string, bigint, string[], string][] =>
  c.journalPartitions.map((p) => [p.partition, p.leader, p.epoch, [...p.replicas], p.leaderAddress]);

describe("planPartitionMap (pure)", () => {
  const node = (id: string): { id: string; roles: NodeRole[]; address: string; registeredAtMs: number } => ({
    id,
    roles: [NodeRole.JOURNAL],
    address: `http://${id}.test:7100`,
    registeredAtMs: 0,
  });
  const report = (id: string, parts: [number, number, boolean][]): { node: ReturnType<typeof node>; status: ReturnType<typeof statusOf> } => ({
    node: node(id),
    status: statusOf(parts),
  });
  const statusOf = (parts: [number, number, boolean][]) =>
    create(GetPartitionsResponseSchema, { partitions: parts.map(([partition, epoch, serving]) => ({ partition, epoch, serving })) });

  it("records each served partition's node, epoch and address; skips broken partitions and ones beyond the count", () => {
    const plan = planPartitionMap(
      [
        report("j1", [
          [0, 4, true],
          [1, 4, false],
          [5, 4, true],
        ]),
      ],
      3,
    );
    expect([...plan.values()]).toEqual([{ partition: 0, leader: "j1", epoch: 4, replicas: ["j1"], leaderAddress: "http://j1.test:7100" }]);
  });

  it("lets the higher epoch lead a partition two nodes claim (ties: the smaller id), listing both as replicas", () => {
    const plan = planPartitionMap(
      [
        report("j2", [
          [0, 3, true],
          [1, 5, true],
        ]),
        report("j1", [
          [0, 3, true],
          [1, 2, true],
        ]),
      ],
      2,
    );
    expect(plan.get(0)).toMatchObject({ leader: "j1", epoch: 3, replicas: ["j1", "j2"] });
    expect(plan.get(1)).toMatchObject({ leader: "j2", epoch: 5, replicas: ["j1", "j2"], leaderAddress: "http://j2.test:7100" });
  });
});

describe("partition map controller (embedded store, stub journal over gRPC)", () => {
  it("records nothing without a journal node; a JOURNAL node registering makes every partition's record appear", async () => {
    const s = await setup();
    expect(await s.running.partitionMap.pass()).toEqual({ changed: [], journalNodes: [], unreachable: [] });
    let c = await s.catalog();
    expect(c.journalPartitions).toEqual([]);
    expect(c.journalAddress).toBe("http://journal.test:7100");

    await s.registerJournal();
    // The registration changes the catalog, which triggers a pass by itself.
    c = await eventually(async () => {
      const cat = await s.catalog();
      return cat.journalPartitions.length === PARTITIONS ? cat : undefined;
    });
    expect(mapOf(c)).toEqual([0, 1, 2].map((p) => [p, "journal-0", 1n, ["journal-0"], s.journal.url]));
    expect(c.journalAddress).toBe("http://journal.test:7100");
    expect(await s.changes("new")).toBe(PARTITIONS);
    // The records are in the store under partitions/<p>.
    const kv = await s.t.store.get(`${s.running.catalog.keys.root}partitions/1`);
    expect(JSON.parse(new TextDecoder().decode(kv!.value))).toEqual({ v: 1, partition: 1, leader: "journal-0", epoch: 1, replicas: ["journal-0"], leaderAddress: s.journal.url });
  });

  it("writes nothing while the map is unchanged, and records the new epoch after a journal restart", async () => {
    const s = await setup();
    await s.registerJournal();
    await eventually(async () => ((await s.catalog()).journalPartitions.length === PARTITIONS ? true : undefined));
    const revision = await s.t.store.revision();
    const calls = s.journal.calls;
    for (let i = 0; i < 3; i++) expect((await s.running.partitionMap.pass()).changed).toEqual([]);
    expect(s.journal.calls).toBeGreaterThan(calls);
    expect(await s.t.store.revision()).toBe(revision);

    await s.journal.restart();
    const r = await s.running.partitionMap.pass();
    expect(r.changed.map((p) => [p.partition, p.epoch])).toEqual([
      [0, 2],
      [1, 2],
      [2, 2],
    ]);
    // One transaction for the whole pass.
    expect(await s.t.store.revision()).toBe(revision + 1);
    expect(mapOf(await s.catalog()).map(([p, leader, epoch]) => [p, leader, epoch])).toEqual([
      [0, "journal-0", 2n],
      [1, "journal-0", 2n],
      [2, "journal-0", 2n],
    ]);
    expect(await s.changes("epoch")).toBe(PARTITIONS);
    expect((await s.running.partitionMap.pass()).changed).toEqual([]);
  });

  it("writes nothing while the store is down or the journal node does not answer, and catches up afterwards", async () => {
    const s = await setup();
    await s.registerJournal();
    await eventually(async () => ((await s.catalog()).journalPartitions.length === PARTITIONS ? true : undefined));
    const revision = await s.t.store.revision();

    await s.journal.restart();
    s.flaky.down = true;
    await expect(s.running.partitionMap.pass()).rejects.toMatchObject({ code: Code.Unavailable });
    s.running.partitionMap.trigger();
    await expect(s.running.partitionMap.pass()).rejects.toMatchObject({ code: Code.Unavailable });
    expect(await s.passes("skipped")).toBeGreaterThanOrEqual(2);
    expect(await s.t.store.revision()).toBe(revision);
    // The cached catalog is still served, with the map as last read.
    expect((await s.catalog()).journalPartitions.map((p) => p.epoch)).toEqual([1n, 1n, 1n]);

    // The journal node is registered and alive but down: its partitions keep their records.
    s.flaky.down = false;
    await s.journal.stop();
    const r = await s.running.partitionMap.pass();
    expect(r).toEqual({ changed: [], journalNodes: ["journal-0"], unreachable: ["journal-0"] });
    expect(await s.t.store.revision()).toBe(revision);

    await s.journal.start();
    expect((await s.running.partitionMap.pass()).changed.map((p) => p.epoch)).toEqual([2, 2, 2]);
    expect((await s.catalog()).journalPartitions.map((p) => p.epoch)).toEqual([2n, 2n, 2n]);
  });
});
