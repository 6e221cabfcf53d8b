// Where a collection's shards go: pure functions, so placement is testable and documented.
//
// Partition of a shard (fixed for the collection's life, and recorded in the catalog, so
// changing this function would only affect collections created afterwards):
//
//     partition(name, s) = (FNV-1a-32(UTF-8(name)) + s) mod partitions
//
// The hash picks where a collection starts; consecutive shards then take consecutive
// partitions, so a collection with shards <= partitions never puts two shards in one
// partition, and different collections start at different partitions.
//
// Replicas of a shard: `replicationFactor` distinct alive storage nodes, chosen shard by
// shard in order, each time the least loaded nodes first (load = shard replicas the node
// already hosts, across the catalog, including the ones just placed), ties broken by node
// id. With equal loads this is round-robin over the nodes.
import { FailedPreconditionError } from "@vecraft/common";

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a, 32-bit, of `data`: an unsigned 32-bit integer. */
export function fnv1a32(data: Uint8Array): number {
  let h = FNV_OFFSET;
  for (const b of data) {
    h ^= b;
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

const encoder = new TextEncoder();

/** The journal partition of shard `shard` of collection `name` (see the file header). */
export function partitionOf(name: string, shard: number, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1) throw new RangeError(`partitions must be a positive integer, got ${partitions}`);
  if (!Number.isInteger(shard) || shard < 0) throw new RangeError(`shard must be a non-negative integer, got ${shard}`);
  return (fnv1a32(encoder.encode(name)) + shard) % partitions;
}

export interface PlacedShard {
  readonly shard: number;
  readonly partition: number;
  readonly replicas: readonly string[];
}

export interface PlacementInput {
  readonly name: string;
  readonly shards: number;
  readonly replicationFactor: number;
  readonly partitions: number;
  /** Alive storage node ids with the shard replicas each already hosts. */
  readonly load: ReadonlyMap<string, number>;
}

/**
 * Places every shard of a new collection. Throws FailedPreconditionError when there are
 * fewer alive storage nodes than the replication factor.
 */
export function placeShards(input: PlacementInput): PlacedShard[] {
  const { name, shards, replicationFactor: rf, partitions } = input;
  if (input.load.size < rf) {
    const alive = [...input.load.keys()].sort();
    throw new FailedPreconditionError(
      `collection ${JSON.stringify(name)} needs ${rf} replicas per shard (replication_factor ${rf}) but ` +
        (alive.length === 0
          ? "no storage node is alive"
          : `only ${alive.length} storage node${alive.length === 1 ? " is" : "s are"} alive (${alive.join(", ")})`) +
        `; start more storage nodes or lower replication_factor`,
      { details: { aliveStorageNodes: alive.length, replicationFactor: rf } },
    );
  }
  const load = new Map(input.load);
  const placed: PlacedShard[] = [];
  for (let s = 0; s < shards; s++) {
    const chosen = [...load.entries()]
      .sort(([ia, la], [ib, lb]) => la - lb || (ia < ib ? -1 : ia > ib ? 1 : 0))
      .slice(0, rf)
      .map(([id]) => id);
    for (const id of chosen) load.set(id, (load.get(id) ?? 0) + 1);
    placed.push({ shard: s, partition: partitionOf(name, s, partitions), replicas: chosen });
  }
  return placed;
}

/** The shards of a placement grouped by partition, partitions and shards ascending. */
export function shardsByPartition(shards: readonly { shard: number; partition: number }[]): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const s of [...shards].sort((a, b) => a.partition - b.partition || a.shard - b.shard)) {
    const list = out.get(s.partition) ?? [];
    list.push(s.shard);
    out.set(s.partition, list);
  }
  return out;
}
