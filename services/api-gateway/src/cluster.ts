// GetClusterStatus: a snapshot assembled from the catalog (nodes, shard placement, the
// journal partition map), the journal (partition offsets) and every storage node's own
// report (shard replicas). Not atomic across nodes; a replica serves when its node's lease
// is alive, the node reports it, and it is not bootstrapping or catching up.
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { decode } from "@vecraft/hlc";
import {
  NodeStatusSchema,
  PartitionStatusSchema,
  ReplicaState,
  ShardReplicaStatusSchema,
  type GetClusterStatusResponse,
  type JournalService,
  type ShardReplicaStatus,
} from "@vecraft/rpc";
import type { CatalogCache } from "./catalog.js";
import { callOptions, downstream, type Scope } from "./scope.js";
import { fetchStorageStatuses, type StatusFetcherDeps } from "./storage.js";

export interface ClusterDeps {
  readonly journal: Client<typeof JournalService>;
  readonly catalog: CatalogCache;
  readonly statuses: StatusFetcherDeps;
  readonly downstreamTimeoutMs: number;
}

type Init<T> = Omit<T, "$typeName" | "$unknown">;

/** A replica answers reads once it has left bootstrap and catch-up (UNSPECIFIED: a node that does not report states). */
function servingState(state: ReplicaState): boolean {
  return state === ReplicaState.SERVING || state === ReplicaState.UNSPECIFIED;
}

export async function clusterStatus(deps: ClusterDeps, scope: Scope): Promise<Init<GetClusterStatusResponse>> {
  const [catalog, journal] = await Promise.all([
    downstream("meta-manager", () => deps.catalog.refreshAfterNow(scope.signal)),
    downstream("journal", () => deps.journal.getPartitions({}, callOptions(scope, deps.downstreamTimeoutMs))),
  ]);
  const collections = deps.catalog.collections();
  const replicaNodes = collections.flatMap((c) => c.entry.shards.flatMap((p) => p.replicas));
  const statuses = await fetchStorageStatuses(deps.statuses, replicaNodes, scope);
  const partitions = new Map(journal.partitions.map((p) => [p.partition, p]));
  const shardReplicas: ShardReplicaStatus[] = [];
  for (const c of collections) {
    for (const placement of [...c.entry.shards].sort((a, b) => a.shard - b.shard)) {
      const part = partitions.get(placement.partition);
      for (const node of placement.replicas) {
        const status = statuses.get(node);
        // A copy of an earlier incarnation (dropped and recreated under the same name) is not
        // this one's replica; a status without a uid is an older node's.
        const state = status?.shards.find((s) => s.collection === c.spec.name && s.shard === placement.shard && (s.uid === "" || s.uid === c.uid));
        const appliedOffset = state?.applied?.offset ?? 0n;
        const appliedTs = state?.applied?.ts ?? 0n;
        const commit = part?.commitOffset ?? 0n;
        const closedMs = part !== undefined ? decode(part.closedTs).wallMs : 0;
        const appliedMs = appliedTs > 0n ? decode(appliedTs).wallMs : 0;
        shardReplicas.push(
          create(ShardReplicaStatusSchema, {
            collection: c.spec.name,
            shard: placement.shard,
            partition: placement.partition,
            node,
            appliedOffset,
            appliedTs,
            lag: commit > appliedOffset ? commit - appliedOffset : 0n,
            lagMs: BigInt(Math.max(0, appliedTs > 0n ? closedMs - appliedMs : 0)),
            serving: state !== undefined && servingState(state.state) && (deps.catalog.node(node)?.alive ?? false),
          }),
        );
      }
    }
  }
  // Leader, epoch and replicas come from the catalog's partition map when the meta-manager
  // keeps one (journal nodes registered); without one (standalone), the journal that
  // answered serves every partition. Offsets and closed ts always come from the journal.
  const map = new Map(catalog.journalPartitions.map((p) => [p.partition, p]));
  return {
    nodes: catalog.nodes.map((n) => create(NodeStatusSchema, { id: n.id, roles: n.roles, address: n.address, alive: n.alive })),
    partitions: journal.partitions.map((p) => {
      const m = map.get(p.partition);
      return create(PartitionStatusSchema, {
        partition: p.partition,
        leader: !p.serving ? "" : (m?.leader ?? journal.nodeId),
        epoch: m !== undefined ? Number(m.epoch) : p.epoch,
        commitOffset: p.commitOffset,
        closedTs: p.closedTs,
        replicas: m !== undefined ? [...m.replicas] : journal.nodeId !== "" ? [journal.nodeId] : [],
      });
    }),
    shardReplicas,
  };
}
