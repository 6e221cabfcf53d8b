// `vecraft status` (also `vecraft cluster status`): GetClusterStatus as three tables.
import { count, table, toJson, tsTime } from "../format.js";
import type { CommandContext, CommandSpec } from "../registry.js";

/** Prints the gateway's GetClusterStatus: nodes, journal partitions, shard replicas. */
export async function printClusterStatus(ctx: CommandContext): Promise<void> {
  const s = await ctx.client().getClusterStatus({ signal: ctx.signal });
  if (ctx.globals.json) {
    ctx.io.out(toJson(s));
    return;
  }
  ctx.io.out(`NODES (${s.nodes.length})`);
  ctx.io.out(
    table(
      ["ID", "ROLES", "ADDRESS", "ALIVE"],
      s.nodes.map((n) => [n.id, n.roles.join(",") || "-", n.address || "-", n.alive ? "yes" : "NO"]),
    ),
  );
  ctx.io.out();
  ctx.io.out(`PARTITIONS (${s.partitions.length})`);
  ctx.io.out(
    table(
      [
        { header: "PARTITION", align: "right" },
        "LEADER",
        { header: "EPOCH", align: "right" },
        { header: "COMMIT OFFSET", align: "right" },
        "CLOSED AT",
        "REPLICAS",
      ],
      s.partitions.map((p) => [
        String(p.partition),
        p.leader || "(election)",
        String(p.epoch),
        count(p.commitOffset),
        tsTime(p.closedTs),
        p.replicas.join(",") || "-",
      ]),
    ),
  );
  ctx.io.out();
  ctx.io.out(`SHARD REPLICAS (${s.shardReplicas.length})`);
  if (s.shardReplicas.length === 0) {
    ctx.io.out("(none)");
    return;
  }
  ctx.io.out(
    table(
      [
        "COLLECTION",
        { header: "SHARD", align: "right" },
        { header: "PARTITION", align: "right" },
        "NODE",
        { header: "APPLIED OFFSET", align: "right" },
        { header: "LAG", align: "right" },
        { header: "LAG MS", align: "right" },
        "SERVING",
      ],
      s.shardReplicas.map((r) => [
        r.collection,
        String(r.shard),
        String(r.partition),
        r.node,
        count(r.appliedOffset),
        count(r.lag),
        count(r.lagMs),
        r.serving ? "yes" : "NO",
      ]),
    ),
  );
}

const status: CommandSpec = {
  path: ["status"],
  summary: "Show the cluster: nodes, journal partitions, shard replicas",
  examples: ["vecraft status", "vecraft status --json"],
  run: printClusterStatus,
};

export const statusCommands: readonly CommandSpec[] = [status];
