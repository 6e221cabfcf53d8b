// The JournalService RPCs: a thin layer that validates requests, converts between proto
// messages and domain values, and delegates to the Journal. No journal logic lives here.
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { InvalidArgumentError, NotFoundError } from "@vecraft/common";
import {
  DdlOp,
  EntryType,
  JournalEntrySchema,
  JournalRecordVersionSchema,
  RecordOp,
  type JournalEntry,
  type JournalService,
} from "@vecraft/rpc";
import { decodePageToken, encodePageToken } from "./audit/audit-index.js";
import type { DecodedRecord } from "./log/codec.js";
import type { Journal } from "./journal.js";
import type { JournalMetrics } from "./metrics.js";
import { decodePayload, type EntryPayload } from "./partition.js";

export interface ServiceLimits {
  readonly maxBatchEntries: number;
  readonly subscribeBatchEntries: number;
  readonly subscribeBatchBytes: number;
  readonly subscribeHeartbeatMs: number;
  readonly auditWaitMs: number;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function toNumber(v: bigint, field: string): number {
  if (v > MAX_SAFE) throw new InvalidArgumentError(`${field} ${v} is larger than 2^53-1`);
  return Number(v);
}

/**
 * A committed record as a JournalEntry: with its payload decoded, or (`raw`) with the
 * stored bytes as they are, for consumers that decode them themselves.
 */
export function toJournalEntry(partition: number, rec: DecodedRecord, raw = false): JournalEntry {
  return create(JournalEntrySchema, {
    partition,
    offset: BigInt(rec.offset),
    epoch: rec.epoch,
    ts: rec.ts,
    type: rec.type as number as EntryType,
    producerId: rec.producerId,
    producerEpoch: rec.producerEpoch,
    seq: BigInt(rec.seq),
    ...(raw ? { payloadBytes: rec.payload } : { payload: decodePayload(rec) ?? { case: undefined } }),
  });
}

function validateEntries(entries: readonly { payload: EntryPayload | { case: undefined; value?: undefined } }[], max: number): EntryPayload[] {
  if (entries.length === 0) throw new InvalidArgumentError("entries: an append needs at least one entry");
  if (entries.length > max) throw new InvalidArgumentError(`entries: ${entries.length} entries in one append, at most ${max} allowed`);
  return entries.map((e, i) => {
    const p = e.payload;
    if (p.case === undefined) throw new InvalidArgumentError(`entries[${i}].payload: set data or ddl`);
    if (p.case === "data") {
      if (!p.value.collection) throw new InvalidArgumentError(`entries[${i}].data.collection: required`);
      if (p.value.upserts.length === 0 && p.value.deleteIds.length === 0) {
        throw new InvalidArgumentError(`entries[${i}].data: a DATA entry needs at least one upsert or delete`);
      }
    } else {
      if (!p.value.collection) throw new InvalidArgumentError(`entries[${i}].ddl.collection: required`);
      if (p.value.op === DdlOp.UNSPECIFIED) throw new InvalidArgumentError(`entries[${i}].ddl.op: required`);
    }
    return p;
  });
}

export function createJournalServiceImpl(journal: Journal, metrics: JournalMetrics, limits: ServiceLimits): ServiceImpl<typeof JournalService> {
  const clampLimit = (requested: number, dflt: number, max: number): number => (requested === 0 ? dflt : Math.min(requested, max));

  return {
    async append(req) {
      const started = process.hrtime.bigint();
      const entries = validateEntries(req.entries, limits.maxBatchEntries);
      const part = journal.partition(req.partition);
      const firstSeq = toNumber(req.firstSeq, "first_seq");
      if (req.producerId !== 0n && firstSeq + entries.length > Number.MAX_SAFE_INTEGER) {
        throw new InvalidArgumentError("first_seq: the batch's sequence numbers run past 2^53-1");
      }
      let result = "ok";
      try {
        const out = await part.append({
          producerId: req.producerId,
          producerEpoch: req.producerEpoch,
          firstSeq,
          causalTs: req.causalTs,
          entries,
        });
        if (out.deduplicated) {
          result = "deduplicated";
          metrics.dedupHits.inc();
        } else {
          metrics.appendedEntries.inc(entries.length);
        }
        return {
          partition: req.partition,
          epoch: out.epoch,
          deduplicated: out.deduplicated,
          results: out.offsets.map((o, i) => ({ offset: BigInt(o), ts: out.ts[i] as bigint })),
        };
      } catch (e) {
        result = "error";
        throw e;
      } finally {
        metrics.appendSeconds.observe({ result }, Number(process.hrtime.bigint() - started) / 1e9);
      }
    },

    async barrier(req) {
      const ids = req.partitions.length > 0 ? req.partitions : journal.servingPartitions().map((p) => p.partition);
      const parts = ids.map((p) => journal.partition(p));
      const positions = await Promise.all(parts.map((p) => p.barrier()));
      return {
        positions: positions.map((pos, i) => ({ partition: ids[i] as number, offset: BigInt(pos.offset), ts: pos.ts })),
      };
    },

    async *subscribe(req, ctx: HandlerContext) {
      const part = journal.partition(req.partition);
      let next = toNumber(req.fromOffset, "from_offset");
      if (next < 1) throw new InvalidArgumentError("from_offset: offsets start at 1");
      const maxEntries = clampLimit(req.maxBatchEntries, limits.subscribeBatchEntries, 10_000);
      while (!ctx.signal.aborted) {
        const recs = await part.read(next, maxEntries, limits.subscribeBatchBytes);
        if (recs.length === 0) {
          await part.waitForCommit(next, limits.subscribeHeartbeatMs, ctx.signal);
          if (part.commitOffset >= next || ctx.signal.aborted) continue;
          // Nothing new within the heartbeat interval: say so, so the client knows we are alive.
          yield { entries: [], commitOffset: BigInt(part.commitOffset), closedTs: part.closedTs, nextOffset: BigInt(next) };
          continue;
        }
        next += recs.length;
        const kept = req.skipTicks ? recs.filter((r) => r.type !== (EntryType.TICK as number)) : recs;
        yield {
          entries: kept.map((r) => toJournalEntry(req.partition, r, req.rawPayloads)),
          commitOffset: BigInt(part.commitOffset),
          closedTs: part.closedTs,
          nextOffset: BigInt(next),
        };
      }
    },

    async readEntries(req) {
      if (req.refs.length > 10_000) throw new InvalidArgumentError(`refs: ${req.refs.length} refs, at most 10000 allowed`);
      const entries: JournalEntry[] = [];
      for (const [i, ref] of req.refs.entries()) {
        const part = journal.partition(ref.partition);
        const offset = toNumber(ref.offset, `refs[${i}].offset`);
        if (offset < part.log.firstOffset || offset > part.commitOffset) {
          throw new NotFoundError(`refs[${i}]: partition ${ref.partition} has no committed entry at offset ${offset} (committed ${part.log.firstOffset}..${part.commitOffset})`);
        }
        entries.push(toJournalEntry(ref.partition, await part.log.readOne(offset)));
      }
      return { entries };
    },

    getPartitions() {
      const partitions = [];
      for (let p = 0; p < journal.partitionCount; p++) {
        const broken = journal.brokenReason(p);
        if (broken !== undefined) {
          partitions.push({ partition: p, serving: false });
          continue;
        }
        const part = journal.partition(p);
        partitions.push({
          partition: p,
          epoch: part.epoch,
          commitOffset: BigInt(part.commitOffset),
          closedTs: part.closedTs,
          firstOffset: BigInt(part.log.firstOffset),
          segments: part.log.segmentCount,
          auditIndexedOffset: BigInt(journal.auditIndexedOffset(p)),
          serving: !part.log.failure,
        });
      }
      return { partitions, nodeId: journal.opts.nodeId };
    },

    async getRecordHistory(req, ctx) {
      if (!req.collection) throw new InvalidArgumentError("collection: required");
      if (!req.id) throw new InvalidArgumentError("id: required");
      await journal.waitForAudit(ctx.signal, limits.auditWaitMs);
      const rows = journal.audit.recordHistory(req.collection, req.id, clampLimit(req.limit, 1000, 10_000));
      const versions = [];
      for (const row of rows) {
        const rec = await journal.partition(row.partition).log.readOne(row.offset);
        const payload = decodePayload(rec);
        const data = payload?.case === "data" ? payload.value : undefined;
        const write = row.op === "upsert" ? data?.upserts.find((u) => u.id === req.id) : undefined;
        versions.push(
          create(JournalRecordVersionSchema, {
            ts: row.ts,
            partition: row.partition,
            offset: BigInt(row.offset),
            op: row.op === "upsert" ? RecordOp.UPSERT : RecordOp.DELETE,
            requestId: data?.requestId ?? "",
            principal: data?.principal ?? "",
            vectorF32: write?.vectorF32 ?? new Uint8Array(0),
            metadataJson: write?.metadataJson ?? "",
          }),
        );
      }
      return { versions };
    },

    async getRequestEntries(req, ctx) {
      if (!req.requestId) throw new InvalidArgumentError("request_id: required");
      await journal.waitForAudit(ctx.signal, limits.auditWaitMs);
      const rows = journal.audit.requestEntries(req.requestId);
      const entries: JournalEntry[] = [];
      for (const row of rows) entries.push(toJournalEntry(row.partition, await journal.partition(row.partition).log.readOne(row.offset)));
      return { entries };
    },

    async listEntries(req, ctx) {
      if (req.limit > 1000) throw new InvalidArgumentError(`limit: ${req.limit} is above the maximum of 1000`);
      if (req.toTs !== 0n && req.toTs < req.fromTs) throw new InvalidArgumentError("to_ts: must not be before from_ts");
      const limit = req.limit === 0 ? 100 : req.limit;
      await journal.waitForAudit(ctx.signal, limits.auditWaitMs);
      const rows = journal.audit.list({
        fromTs: req.fromTs,
        limit: limit + 1,
        ...(req.toTs !== 0n ? { toTs: req.toTs } : {}),
        ...(req.collection ? { collection: req.collection } : {}),
        ...(req.principal ? { principal: req.principal } : {}),
        ...(req.pageToken ? { after: decodePageToken(req.pageToken) } : {}),
      });
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        operations: page.map((r) => ({
          ts: r.ts,
          partition: r.partition,
          offset: BigInt(r.offset),
          type: r.type,
          collection: r.collection,
          requestId: r.requestId,
          principal: r.principal,
          upserts: r.upserts,
          deletes: r.deletes,
        })),
        nextPageToken: rows.length > limit && last ? encodePageToken(last) : "",
      };
    },
  };
}
