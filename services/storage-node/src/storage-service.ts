// The StorageService RPCs: validate, wait for the read target, delegate to the shard.
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { InvalidArgumentError, NotFoundError } from "@vecraft/common";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ReplicaState, type Collection, type ReadTarget, type StorageService, type StoredRecordSchema } from "@vecraft/rpc";
import type { Position, ReplicaStateName, StorageNode } from "./node.js";
import type { CompiledWhere, Shard } from "./shard.js";
import type { StoredRow } from "./shard-store.js";
import type { StorageMetrics } from "./metrics.js";

/** Compiles a JSON filter for a collection (the public filter language); throws InvalidArgumentError. */
export type FilterCompiler = (collection: Collection, filterJson: string) => CompiledWhere;

export interface StorageLimits {
  readonly defaultWaitMs: number;
  readonly maxWaitMs: number;
}

function vectorOf(bytes: Uint8Array, shard: Shard): Float32Array {
  const dim = shard.params.dimension;
  if (bytes.length !== dim * 4) {
    throw new InvalidArgumentError(`vector: expected ${dim} dimensions, got ${bytes.length / 4}`);
  }
  const v = new Float32Array(dim);
  new Uint8Array(v.buffer).set(bytes);
  for (let i = 0; i < dim; i++) {
    if (!Number.isFinite(v[i])) throw new InvalidArgumentError(`vector[${i}]: must be a finite number`);
  }
  return v;
}

function bytesOf(v: Float32Array): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function applied(shard: Shard, pos: Position): { partition: number; offset: bigint; ts: bigint } {
  return { partition: shard.partition, offset: BigInt(pos.offset), ts: pos.ts };
}

function stored(row: StoredRow, withVector = true, withMetadata = true): MessageInitShape<typeof StoredRecordSchema> {
  return {
    id: row.id,
    vectorF32: withVector ? bytesOf(row.vector) : new Uint8Array(0),
    metadataJson: withMetadata ? row.metadataJson : "",
    ts: row.ts,
    offset: BigInt(row.offset),
  };
}

const REPLICA_STATES: Record<ReplicaStateName, ReplicaState> = {
  serving: ReplicaState.SERVING,
  bootstrapping: ReplicaState.BOOTSTRAPPING,
  catching_up: ReplicaState.CATCHING_UP,
};

export function createStorageServiceImpl(nodeOf: () => StorageNode, compile: FilterCompiler, limits: StorageLimits, metrics: StorageMetrics): ServiceImpl<typeof StorageService> {
  const wait = async (shard: Shard, read: ReadTarget | undefined, ctx: HandlerContext): Promise<Position> => {
    const node = nodeOf();
    const waitMs = Math.min(read?.waitMs || limits.defaultWaitMs, limits.maxWaitMs, ctx.timeoutMs() ?? Number.MAX_SAFE_INTEGER);
    const pos = await node.waitFor(shard.partition, { minOffset: Number(read?.minOffset ?? 0n), minTs: read?.minTs ?? 0n }, waitMs, ctx.signal);
    // Removed while the read waited (placement moved, DROP): it is closed or about to be.
    if (shard.retired) throw node.movedOff(shard);
    return pos;
  };
  /**
   * The serving replica a read names. A non-empty `uid` must be its incarnation's: after
   * a DROP and a CREATE under the same name this node may still host the old one (its
   * DROP not applied yet, or placement moved), and must not answer for the new one.
   * NOT_FOUND, so the query processor reads another replica without marking this node
   * unhealthy. A replica registered before uids were kept ("") is not checked.
   */
  const served = (req: { collection: string; shard: number; uid: string }): Shard => {
    const node = nodeOf();
    const shard = node.shard(req.collection, req.shard);
    if (req.uid && shard.uid && req.uid !== shard.uid) {
      throw new NotFoundError(
        `storage node ${node.nodeId} hosts shard ${req.shard} of collection ${req.collection} incarnation ${shard.uid}, not ${req.uid} (dropped and recreated?); read another replica`,
      );
    }
    return shard;
  };
  const filterOf = (shard: Shard, json: string): CompiledWhere | undefined => (json ? compile(shard.spec.collection, json) : undefined);

  return {
    async searchShard(req, ctx) {
      const node = nodeOf();
      const shard = served(req);
      if (req.k < 1 || req.k > 1000) throw new InvalidArgumentError(`k: must be between 1 and 1000, got ${req.k}`);
      const query = vectorOf(req.vectorF32, shard);
      const filter = filterOf(shard, req.filterJson);
      const pos = await wait(shard, req.read, ctx);
      const stop = metrics.searchSeconds.startTimer({ filtered: filter ? "yes" : "no" });
      const hits = shard.search(query, { k: req.k, ef: req.ef, filter });
      stop();
      return {
        node: node.nodeId,
        applied: applied(shard, pos),
        hits: hits.map((h) => ({
          id: h.id,
          score: h.score,
          vectorF32: req.includeVectors ? bytesOf(h.row.vector) : new Uint8Array(0),
          metadataJson: req.includeMetadata ? h.row.metadataJson : "",
        })),
      };
    },

    async getShardRecords(req, ctx) {
      const shard = served(req);
      if (req.ids.length > 1000) throw new InvalidArgumentError(`ids: at most 1000 per request, got ${req.ids.length}`);
      const pos = await wait(shard, req.read, ctx);
      const byId = new Map(shard.get(req.ids).map((r) => [r.id, r]));
      const records = req.ids.flatMap((id) => {
        const r = byId.get(id);
        return r ? [stored(r)] : [];
      });
      return { records, applied: applied(shard, pos) };
    },

    async queryShard(req, ctx) {
      const shard = served(req);
      if (req.limit < 1 || req.limit > 1000) throw new InvalidArgumentError(`limit: must be between 1 and 1000, got ${req.limit}`);
      const filter = filterOf(shard, req.filterJson);
      const pos = await wait(shard, req.read, ctx);
      return { records: shard.page(filter, req.afterId, req.limit).map((r) => stored(r)), applied: applied(shard, pos) };
    },

    async *getShardSnapshot(req, ctx) {
      yield* nodeOf().snapshot(req.collection, req.shard, req.uid, req.chunkBytes, ctx.signal);
    },

    getStorageStatus() {
      const node = nodeOf();
      return {
        node: node.nodeId,
        shards: node.replicas().map((r) => {
          const s = r.replica;
          // A serving replica stands where its partition does; one being built where it got to.
          const pos = r.state === "serving" ? node.position(r.partition) : { offset: s?.store.appliedOffset ?? 0, ts: s?.store.appliedTs ?? 0n };
          return {
            collection: r.collection,
            shard: r.shard,
            uid: r.uid,
            applied: { partition: r.partition, offset: BigInt(pos.offset), ts: pos.ts },
            records: BigInt(s?.store.liveRecords ?? 0),
            indexed: BigInt(s?.index.size ?? 0),
            checkpointOffset: BigInt(s?.index.checkpointOffset ?? 0),
            state: REPLICA_STATES[r.state],
            bootstrapBytesDone: BigInt(r.bytesDone),
            bootstrapBytesTotal: BigInt(r.bytesTotal),
          };
        }),
        partitions: node.partitionPositions().map(({ partition, position }) => ({ partition, offset: BigInt(position.offset), ts: position.ts })),
      };
    },
  };
}
