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
//
// Repairs (the failover controller, failover.ts) use the same rule: a dead replica is
// replaced by the least loaded alive storage node that is not already a replica of the
// shard, ties by node id, and the load is updated after each pick so that the
// replacements of one pass spread too. A shard is repaired only when another of its
// replicas is known to be SERVING: a new replica copies a serving peer's snapshot, and a
// replica still bootstrapping has nothing to give (see `planRepairs`).
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
    const chosen: string[] = [];
    for (let r = 0; r < rf; r++) {
      const id = leastLoaded(load, chosen);
      if (id === undefined) break; // unreachable: load.size >= rf was checked above
      chosen.push(id);
      load.set(id, (load.get(id) ?? 0) + 1);
    }
    placed.push({ shard: s, partition: partitionOf(name, s, partitions), replicas: chosen });
  }
  return placed;
}

/**
 * The least loaded node of `load` that is not in `exclude`, ties by node id (byte order
 * of the UTF-16 code units, i.e. `<` on strings); undefined when every node is excluded.
 */
export function leastLoaded(load: ReadonlyMap<string, number>, exclude: Iterable<string>): string | undefined {
  const skip = new Set(exclude);
  let best: string | undefined;
  let bestLoad = Infinity;
  for (const [id, l] of load) {
    if (skip.has(id)) continue;
    if (l < bestLoad || (l === bestLoad && best !== undefined && id < best)) {
      best = id;
      bestLoad = l;
    }
  }
  return best;
}

/** One change to a shard's replica list: `from` replaced by `to`, or `to` added (`from` undefined). */
export interface ReplicaMove {
  readonly shard: number;
  readonly from: string | undefined;
  readonly to: string;
}

export interface RepairInput {
  /** The collection (the key of `serving`). */
  readonly collection: string;
  readonly shards: readonly PlacedShard[];
  readonly replicationFactor: number;
  /** Listed nodes that are dead long enough to be replaced. */
  readonly replaceable: ReadonlySet<string>;
  /**
   * Alive storage nodes with the replicas each hosts (the candidates). Updated in place
   * with every pick, so that the next collection of the same pass sees the new load.
   */
  readonly load: Map<string, number>;
  /** The replicas known to be SERVING now, as `replicaKey(collection, shard, node)`. */
  readonly serving: ReadonlySet<string>;
}

/** The key of one shard replica in `RepairInput.serving`. */
export function replicaKey(collection: string, shard: number, node: string): string {
  // NUL cannot occur in a collection name or a node id (both are validated).
  return `${collection}\u0000${shard}\u0000${node}`;
}

/** A shard whose repair waits: its alive replicas (the possible sources), none known to be serving. */
export interface DeferredShard {
  readonly shard: number;
  /** Its listed replicas on alive storage nodes, none of them known to be SERVING. */
  readonly sources: readonly string[];
  /** Replicas it would have moved or added. */
  readonly replicas: number;
}

export interface RepairPlan {
  /** The shards after the moves (the input's order; replacements keep their position). */
  readonly shards: readonly PlacedShard[];
  readonly moves: readonly ReplicaMove[];
  /** Replicas that should move (or be added) but no candidate node is left. */
  readonly unplaced: number;
  /** Shards skipped because none of their replicas is an alive storage node (no peer to copy from). */
  readonly withoutLiveReplica: readonly number[];
  /** Shards skipped because none of their alive replicas is known to be serving (no peer with data yet). */
  readonly deferred: readonly DeferredShard[];
}

/** Whether a shard has a replica to replace or is short of the replication factor. */
export function needsRepair(shard: PlacedShard, replicationFactor: number, replaceable: ReadonlySet<string>): boolean {
  return shard.replicas.some((r) => replaceable.has(r)) || shard.replicas.length < replicationFactor;
}

/**
 * Replaces the `replaceable` replicas of each shard, then tops shards up to the
 * replication factor, with `leastLoaded` picks. Never removes a replica that is not
 * `replaceable`, so a live replica is never taken away.
 *
 * A shard is repaired only when one of its other listed replicas is `serving`: the new
 * replica bootstraps from a serving peer's snapshot, and the dead one may be the only copy
 * with the data. Were a replica that is still bootstrapping enough, a second failure
 * before it serves would list only empty replicas, and the dead node, coming back and
 * finding itself unlisted, would delete the last copy. So a shard with no alive replica
 * is left as it is (`withoutLiveReplica`), and one whose alive replicas are not (known
 * to be) serving waits (`deferred`).
 */
export function planRepairs(input: RepairInput): RepairPlan {
  const { load } = input;
  const moves: ReplicaMove[] = [];
  const withoutLiveReplica: number[] = [];
  const deferred: DeferredShard[] = [];
  let unplaced = 0;
  const shards = input.shards.map((s): PlacedShard => {
    if (!needsRepair(s, input.replicationFactor, input.replaceable)) return s;
    const alive = s.replicas.filter((r) => load.has(r));
    if (alive.length === 0) {
      withoutLiveReplica.push(s.shard);
      return s;
    }
    if (!alive.some((r) => input.serving.has(replicaKey(input.collection, s.shard, r)))) {
      const replicas = s.replicas.filter((r) => input.replaceable.has(r)).length + Math.max(0, input.replicationFactor - s.replicas.length);
      deferred.push({ shard: s.shard, sources: alive, replicas });
      return s;
    }
    const replicas = [...s.replicas];
    const pick = (): string | undefined => {
      const id = leastLoaded(load, replicas);
      if (id !== undefined) load.set(id, (load.get(id) ?? 0) + 1);
      return id;
    };
    for (let i = 0; i < replicas.length; i++) {
      const from = replicas[i] as string;
      if (!input.replaceable.has(from)) continue;
      const to = pick();
      if (to === undefined) {
        unplaced++;
        continue;
      }
      replicas[i] = to;
      moves.push({ shard: s.shard, from, to });
    }
    while (replicas.length < input.replicationFactor) {
      const to = pick();
      if (to === undefined) {
        unplaced += input.replicationFactor - replicas.length;
        break;
      }
      replicas.push(to);
      moves.push({ shard: s.shard, from: undefined, to });
    }
    return { ...s, replicas };
  });
  return { shards, moves, unplaced, withoutLiveReplica, deferred };
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
