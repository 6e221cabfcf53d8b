// `vecraft cluster ...` without processes: the role table's arguments, flag discovery from
// a service's --help, usage errors, and `cluster status` against the fake server. The
// real multi-process cluster is tested in test/integration/cluster.test.ts.
import { describe, expect, it } from "vitest";
import { etcdArgs, serviceArgs, type ProcessPlan, type Topology } from "../src/cluster/roles.js";
import { newFake, vecraft } from "./helpers.js";

const topology: Topology = {
  etcdEndpoints: ["http://127.0.0.1:2379"],
  metaUrl: "http://127.0.0.1:7200",
  journalUrl: "http://127.0.0.1:7100",
  queryUrls: ["http://127.0.0.1:7400", "http://127.0.0.1:7401"],
  partitions: 3,
  logLevel: "warn",
};

const plan = (role: ProcessPlan["role"], index: number, port: number, dataDir?: string): ProcessPlan => ({
  name: `${role}-${index}`,
  role,
  index,
  nodeId: `${role}-${index}`,
  port,
  url: `http://127.0.0.1:${port}`,
  dataDir,
});

describe("the role table", () => {
  it("gives each role its flags", () => {
    const storage = { ...plan("storage", 1, 7301, "/d/storage-1"), role: "storage" as const };
    expect(serviceArgs(storage, topology)).toEqual([
      "--host=127.0.0.1",
      "--port=7301",
      "--log-level=warn",
      "--node-id=storage-1",
      "--data-dir=/d/storage-1",
      "--journal-url=http://127.0.0.1:7100",
      "--meta-url=http://127.0.0.1:7200",
      "--advertise-url=http://127.0.0.1:7301",
      "--host-all=false",
    ]);
    const gateway = serviceArgs({ ...plan("gateway", 1, 8081), role: "gateway" as const }, topology);
    expect(gateway).toContain("--query-url=http://127.0.0.1:7401");
    expect(gateway).toContain("--node-id=gateway-1");
  });

  it("starts etcd as one loopback member with its own data directory", () => {
    const args = etcdArgs({ ...plan("etcd", 0, 2379, "/d/etcd"), nodeId: "default", peerPort: 2380 });
    expect(args).toContain("--listen-client-urls=http://127.0.0.1:2379");
    expect(args).toContain("--initial-cluster=default=http://127.0.0.1:2380");
    expect(args).toContain("--data-dir=/d/etcd");
  });
});

describe("vecraft cluster", () => {
  it("rejects bad flags before starting anything", async () => {
    const bad = await vecraft(undefined, ["cluster", "up", "--etcd-endpoints", "127.0.0.1:2379"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("is not a client URL like http://127.0.0.1:2379");
    expect((await vecraft(undefined, ["cluster", "up", "--storage-nodes", "0"])).err).toContain("--storage-nodes must be >= 1");
    expect((await vecraft(undefined, ["cluster", "up", "--log-level", "loud"])).code).toBe(2);
  });

  it("lists up and status under `vecraft cluster`", async () => {
    const help = await vecraft(undefined, ["cluster", "--help"]);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/cluster up\s+Start a local cluster/);
    expect(help.out).toMatch(/cluster status\s+Show the cluster/);
  });

  it("`cluster status` prints what `status` prints", async () => {
    const fake = newFake();
    const a = await vecraft(fake, ["cluster", "status"]);
    const b = await vecraft(fake, ["status"]);
    expect(a.code).toBe(0);
    expect(a.out).toBe(b.out);
    expect(a.out).toContain("SHARD REPLICAS");
  });
});
