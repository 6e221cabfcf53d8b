// Upsert and Delete: validate the whole batch, split it by shard, group the shards by
// journal partition, and append to every partition in parallel with the client's causal
// token. The journal producer comes from the request id (producer.ts), so a retry of the
// same request through any gateway is answered with the original positions.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { AlreadyExistsError, InternalError, InvalidArgumentError, retry, type Logger } from "@vecraft/common";
import { MAX_ID_BYTES, validateDeleteBatch, validateUpsertBatch } from "@vecraft/model";
import {
  DataPayloadSchema,
  EntryPositionSchema,
  type AppendResponse,
  type DataPayload,
  type DeleteRequest,
  type DeleteResponse,
  type EntryPosition,
  type JournalService,
  type UpsertRequest,
  type UpsertResponse,
} from "@vecraft/rpc";
import type { CatalogCache, ResolvedCollection } from "./catalog.js";
import { vectorToBytes } from "./codec.js";
import type { GatewayMetrics } from "./metrics.js";
import { REQUEST_FIRST_SEQ, REQUEST_PRODUCER_EPOCH, producerIdOf } from "./producer.js";
import { callOptions, downstreamError, type Scope } from "./scope.js";
import { nextSessionToken, parseSessionToken } from "./session-token.js";
import { checkCollectionName, checkRequestId, invalidField } from "./validate.js";

export interface WriteLimits {
  readonly maxBatchRecords: number;
  readonly maxBatchBytes: number;
  readonly maxMetadataBytes: number;
  readonly downstreamTimeoutMs: number;
}

export interface WriterDeps {
  readonly journal: Client<typeof JournalService>;
  readonly catalog: CatalogCache;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly limits: WriteLimits;
}

type Op = "upsert" | "delete";

interface ShardPayload {
  readonly shard: number;
  readonly payload: DataPayload;
  /** Records upserted or ids deleted. */
  readonly rows: number;
}

/** The journal said "dedup" for a batch that overlaps an earlier one of the same producer without matching it. */
const OVERLAP = /overlap an earlier batch/;
/** The journal refused the causal token (the client's session token). */
const CAUSAL = /causal_ts/;
/** Append retries (UNAVAILABLE only: safe, since the producer deduplicates them). */
const APPEND_RETRY = { maxAttempts: 3, initialMs: 50, maxMs: 500, multiplier: 2, jitter: 0.2 } as const;

const encoder = new TextEncoder();

export class Writer {
  constructor(private readonly deps: WriterDeps) {}

  async upsert(req: UpsertRequest, scope: Scope): Promise<Omit<UpsertResponse, "$typeName" | "$unknown">> {
    const { collection, requestId, token } = this.#common(req);
    const col = await this.deps.catalog.collection(collection, scope.signal);
    const { maxBatchRecords, maxBatchBytes, maxMetadataBytes } = this.deps.limits;
    const records = validateUpsertBatch(
      col.spec,
      req.records.map((r) => ({ id: r.id, vector: r.vector, metadata: r.metadata })),
      { maxBatch: maxBatchRecords, maxIdBytes: MAX_ID_BYTES, maxMetadataBytes },
    );
    let bytes = 0;
    for (const r of records) bytes += encoder.encode(r.id).byteLength + r.vector.byteLength + Buffer.byteLength(r.metadataJson, "utf8");
    if (bytes > maxBatchBytes) {
      throw invalidField("records", `the batch holds ${bytes} bytes of ids, vectors and metadata, at most ${maxBatchBytes}`);
    }
    const byShard = new Map<number, typeof records>();
    for (const r of records) {
      const list = byShard.get(r.shard);
      if (list === undefined) byShard.set(r.shard, [r]);
      else list.push(r);
    }
    const payloads: ShardPayload[] = [...byShard.entries()].map(([shard, rs]) => ({
      shard,
      rows: rs.length,
      payload: create(DataPayloadSchema, {
        collection,
        shard,
        upserts: rs.map((r) => ({ id: r.id, vectorF32: vectorToBytes(r.vector), metadataJson: r.metadataJson })),
        requestId,
        principal: scope.caller.principal,
        traceId: scope.traceId,
      }),
    }));
    const out = await this.#append("upsert", col, payloads, requestId, token, scope);
    return { upserted: records.length, ...out };
  }

  async delete(req: DeleteRequest, scope: Scope): Promise<Omit<DeleteResponse, "$typeName" | "$unknown">> {
    const { collection, requestId, token } = this.#common(req);
    const col = await this.deps.catalog.collection(collection, scope.signal);
    const ids = validateDeleteBatch(col.spec, req.ids, { maxBatch: this.deps.limits.maxBatchRecords, maxIdBytes: MAX_ID_BYTES });
    const byShard = new Map<number, string[]>();
    for (const d of ids) {
      const list = byShard.get(d.shard);
      if (list === undefined) byShard.set(d.shard, [d.id]);
      else list.push(d.id);
    }
    const payloads: ShardPayload[] = [...byShard.entries()].map(([shard, list]) => ({
      shard,
      rows: list.length,
      payload: create(DataPayloadSchema, {
        collection,
        shard,
        deleteIds: list,
        requestId,
        principal: scope.caller.principal,
        traceId: scope.traceId,
      }),
    }));
    const out = await this.#append("delete", col, payloads, requestId, token, scope);
    return { deleted: ids.length, ...out };
  }

  #common(req: { collection: string; requestId: string; sessionToken: string }): { collection: string; requestId: string; token: bigint } {
    const collection = checkCollectionName(req.collection);
    const requestId = checkRequestId(req.requestId) || randomUUID();
    const token = parseSessionToken(req.sessionToken);
    return { collection, requestId, token };
  }

  async #append(
    op: Op,
    col: ResolvedCollection,
    payloads: ShardPayload[],
    requestId: string,
    token: bigint,
    scope: Scope,
  ): Promise<{ sessionToken: string; entries: EntryPosition[]; requestId: string }> {
    const { metrics, logger } = this.deps;
    const byPartition = new Map<number, ShardPayload[]>();
    for (const p of payloads) {
      const partition = col.partitionOf[p.shard];
      if (partition === undefined) {
        throw new InternalError(`shard ${p.shard} of collection ${JSON.stringify(col.spec.name)} has no journal partition in the catalog`);
      }
      const list = byPartition.get(partition);
      if (list === undefined) byPartition.set(partition, [p]);
      else list.push(p);
    }
    const producerId = producerIdOf(requestId);
    const log = logger.child({ requestId, principal: scope.caller.principal, traceId: scope.traceId, collection: col.spec.name, op });
    const jobs = [...byPartition.entries()].map(async ([partition, list]) => {
      // A fixed order (by shard) makes a retry present the same batch: the same seqs for the same payloads.
      list.sort((a, b) => a.shard - b.shard);
      const res = await this.#appendOne(partition, list, producerId, token, scope);
      if (res.results.length !== list.length) {
        throw new InternalError(`journal partition ${partition} returned ${res.results.length} results for ${list.length} entries`);
      }
      if (res.deduplicated) {
        await this.#checkRetry(partition, res, list, requestId, scope);
        metrics.writeRetriesDeduplicated.inc({ op });
      } else {
        metrics.rowsWritten.inc(
          { op },
          list.reduce((n, p) => n + p.rows, 0),
        );
      }
      return res.results.map((r) => create(EntryPositionSchema, { partition, offset: r.offset, ts: r.ts }));
    });
    const settled = await Promise.allSettled(jobs);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed !== undefined) {
      const written = [...byPartition.keys()].filter((_, i) => settled[i]?.status === "fulfilled");
      const code = failed.reason instanceof ConnectError ? failed.reason.code : undefined;
      if (written.length > 0 && (code === Code.Unavailable || code === Code.DeadlineExceeded)) {
        log.warn("write partly journaled; a retry with the same request_id completes it", { writtenPartitions: written, error: failed.reason });
      } else {
        log.debug("write failed", { writtenPartitions: written, error: failed.reason });
      }
      throw failed.reason;
    }
    const entries = settled.flatMap((s) => (s.status === "fulfilled" ? s.value : []));
    entries.sort((a, b) =>
      a.ts !== b.ts ? (a.ts < b.ts ? -1 : 1) : a.partition !== b.partition ? a.partition - b.partition : a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0,
    );
    const maxTs = entries.reduce((m, e) => (e.ts > m ? e.ts : m), 0n);
    log.debug("write journaled", { entries: entries.length });
    return { sessionToken: nextSessionToken(token, maxTs), entries, requestId };
  }

  async #appendOne(partition: number, list: ShardPayload[], producerId: bigint, token: bigint, scope: Scope): Promise<AppendResponse> {
    const { journal, limits } = this.deps;
    const remaining = scope.timeoutMs();
    try {
      return await retry(
        () =>
          journal.append(
            {
              partition,
              producerId,
              producerEpoch: REQUEST_PRODUCER_EPOCH,
              firstSeq: REQUEST_FIRST_SEQ,
              causalTs: token,
              entries: list.map((p) => ({ payload: { case: "data", value: p.payload } })),
            },
            callOptions(scope, limits.downstreamTimeoutMs),
          ),
        {
          ...APPEND_RETRY,
          signal: scope.signal,
          budgetMs: Math.min(remaining ?? limits.downstreamTimeoutMs, 2_000),
          isRetryable: (e) => e instanceof ConnectError && e.code === Code.Unavailable,
        },
      );
    } catch (e) {
      if (e instanceof ConnectError && e.code === Code.InvalidArgument && OVERLAP.test(e.rawMessage)) {
        throw new AlreadyExistsError(`request_id was already used for a different batch (journal partition ${partition}); use a new request_id`, {
          cause: e,
          details: { field: "request_id" },
        });
      }
      if (e instanceof ConnectError && e.code === Code.InvalidArgument && CAUSAL.test(e.rawMessage)) {
        // The batch was valid; the token was not (too far in the future for the journal's clock).
        throw new InvalidArgumentError(`session_token: ${e.rawMessage}`, { cause: e, details: { field: "session_token" } });
      }
      throw downstreamError("journal", e);
    }
  }

  /**
   * The journal answered from its deduplication table: make sure the original batch is
   * this one (same collection, shards, ids, vectors and metadata), not another request
   * that reused the id.
   */
  async #checkRetry(partition: number, res: AppendResponse, list: ShardPayload[], requestId: string, scope: Scope): Promise<void> {
    const read = await this.deps.journal
      .readEntries({ refs: res.results.map((r) => ({ partition, offset: r.offset })) }, callOptions(scope, this.deps.limits.downstreamTimeoutMs))
      .catch((e: unknown) => {
        throw downstreamError("journal", e);
      });
    list.forEach((p, i) => {
      const got = read.entries[i]?.payload;
      const orig = got?.case === "data" ? got.value : undefined;
      const same =
        orig !== undefined &&
        orig.collection === p.payload.collection &&
        orig.shard === p.payload.shard &&
        orig.requestId === requestId &&
        orig.upserts.length === p.payload.upserts.length &&
        orig.upserts.every((u, k) => {
          const mine = p.payload.upserts[k];
          return mine !== undefined && u.id === mine.id && u.metadataJson === mine.metadataJson && sameBytes(u.vectorF32, mine.vectorF32);
        }) &&
        sameList(orig.deleteIds, p.payload.deleteIds);
      if (!same) {
        throw new AlreadyExistsError(`request_id was already used for a different batch (journal partition ${partition}); use a new request_id`, {
          details: { field: "request_id" },
        });
      }
    });
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
