// The StorageService RPCs: validate, wait for the read target, delegate to the shard.
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { InvalidArgumentError } from "@vecraft/common";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Collection, ReadTarget, StorageService, StoredRecordSchema } from "@vecraft/rpc";
import type { Position, StorageNode } from "./node.js";
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

export function createStorageServiceImpl(nodeOf: () => StorageNode, compile: FilterCompiler, limits: StorageLimits, metrics: StorageMetrics): ServiceImpl<typeof StorageService> {
  const wait = async (shard: Shard, read: ReadTarget | undefined, ctx: HandlerContext): Promise<Position> => {
    const node = nodeOf();
    const waitMs = Math.min(read?.waitMs || limits.defaultWaitMs, limits.maxWaitMs, ctx.timeoutMs() ?? Number.MAX_SAFE_INTEGER);
    return node.waitFor(shard.partition, { minOffset: Number(read?.minOffset ?? 0n), minTs: read?.minTs ?? 0n }, waitMs, ctx.signal);
  };
  const filterOf = (shard: Shard, json: string): CompiledWhere | undefined => (json ? compile(shard.spec.collection, json) : undefined);

  return {
    async searchShard(req, ctx) {
      const node = nodeOf();
      const shard = node.shard(req.collection, req.shard);
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
      const node = nodeOf();
      const shard = node.shard(req.collection, req.shard);
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
      const node = nodeOf();
      const shard = node.shard(req.collection, req.shard);
      if (req.limit < 1 || req.limit > 1000) throw new InvalidArgumentError(`limit: must be between 1 and 1000, got ${req.limit}`);
      const filter = filterOf(shard, req.filterJson);
      const pos = await wait(shard, req.read, ctx);
      return { records: shard.page(filter, req.afterId, req.limit).map((r) => stored(r)), applied: applied(shard, pos) };
    },

    getStorageStatus() {
      const node = nodeOf();
      return {
        node: node.nodeId,
        shards: node.hostedShards().map((s) => {
          const pos = node.position(s.partition);
          return {
            collection: s.collection,
            shard: s.shard,
            applied: applied(s, pos),
            records: BigInt(s.store.liveRecords),
            indexed: BigInt(s.index.size),
            checkpointOffset: BigInt(s.index.checkpointOffset),
          };
        }),
        partitions: node.partitionPositions().map(({ partition, position }) => ({ partition, offset: BigInt(position.offset), ts: position.ts })),
      };
    },
  };
}
