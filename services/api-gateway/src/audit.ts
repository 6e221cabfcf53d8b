// The journal's audit APIs: GetRecordHistory, GetRequestLineage and ListOperations. The
// journal's audit index waits, on every query, until it covers every entry committed when
// the query arrived. So a read timestamp taken just before the query (the smallest
// closed ts over the partitions: nothing committed later can have a smaller ts) is one
// at which every entry with ts <= read_ts is in the answer.
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { InternalError, NotFoundError, type Logger } from "@vecraft/common";
import { validateRecordId } from "@vecraft/model";
import {
  Consistency,
  DdlOp,
  EntryType,
  LineageEntrySchema,
  OperationSchema,
  OperationType,
  Op,
  RecordOp,
  RecordVersionSchema,
  ReplicaApplyStatusSchema,
  type GetRecordHistoryRequest,
  type GetRecordHistoryResponse,
  type GetRequestLineageRequest,
  type GetRequestLineageResponse,
  type JournalEntry,
  type JournalService,
  type LineageEntry,
  type ListOperationsRequest,
  type ListOperationsResponse,
  type Operation,
  type ReplicaApplyStatus,
} from "@vecraft/rpc";
import { requireCollection } from "./auth.js";
import type { CatalogCache } from "./catalog.js";
import { bytesToVector, canonicalJson, metadataFromJson } from "./codec.js";
import { resolveConsistency } from "./consistency.js";
import { decodeHistoryPageToken, decodeOperationsPageToken, encodeHistoryPageToken, encodeOperationsPageToken, filterFingerprint } from "./page-token.js";
import { callOptions, downstream, type Scope } from "./scope.js";
import { nextSessionToken, parseSessionToken } from "./session-token.js";
import { fetchStorageStatuses, type StatusFetcherDeps } from "./storage.js";
import { checkCollectionName, checkLimit, checkRequestId, invalidField } from "./validate.js";

export interface AuditDeps {
  readonly journal: Client<typeof JournalService>;
  readonly catalog: CatalogCache;
  readonly statuses: StatusFetcherDeps;
  readonly logger: Logger;
  readonly defaultStalenessMs: number;
  readonly downstreamTimeoutMs: number;
}

type Init<T> = Omit<T, "$typeName" | "$unknown">;

/** The journal returns at most this many versions of one record per call. */
const HISTORY_FETCH_LIMIT = 10_000;

function comparePosition(a: { ts: bigint; partition: number; offset: bigint }, b: { ts: bigint; partition: number; offset: bigint }): number {
  if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1;
  if (a.partition !== b.partition) return a.partition - b.partition;
  return a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0;
}

function operationType(e: { type: EntryType }, ddlOp: DdlOp | undefined): OperationType {
  if (e.type === EntryType.DATA) return OperationType.WRITE;
  if (ddlOp === DdlOp.CREATE_COLLECTION) return OperationType.CREATE_COLLECTION;
  if (ddlOp === DdlOp.DROP_COLLECTION) return OperationType.DROP_COLLECTION;
  return OperationType.UNSPECIFIED;
}

export class Audit {
  constructor(private readonly deps: AuditDeps) {}

  /**
   * A read timestamp for the audit index (0 for EVENTUAL, which promises nothing): the
   * smallest of the partitions' barrier positions. A barrier lands after every entry
   * acknowledged before this call, so the answer includes the caller's own writes (the
   * partitions' last closed ts could still be older than a write just acknowledged on
   * another partition), and nothing committed later can have a smaller ts.
   */
  async #readTs(level: Consistency, scope: Scope): Promise<bigint> {
    if (level === Consistency.EVENTUAL) return 0n;
    const res = await downstream("journal", () => this.deps.journal.barrier({}, callOptions(scope, this.deps.downstreamTimeoutMs)));
    let min: bigint | undefined;
    for (const p of res.positions) if (min === undefined || p.ts < min) min = p.ts;
    return min ?? 0n;
  }

  async recordHistory(req: GetRecordHistoryRequest, scope: Scope): Promise<Init<GetRecordHistoryResponse>> {
    const collection = checkCollectionName(req.collection);
    const id = validateRecordId(req.id, "id");
    const limit = checkLimit(req.limit);
    const { consistency, token } = resolveConsistency(req.consistency, this.deps.defaultStalenessMs);
    const page = req.pageToken === "" ? undefined : decodeHistoryPageToken(req.pageToken);
    if (page !== undefined && (page.collection !== collection || page.id !== id)) {
      throw invalidField("page_token", "the token belongs to another record");
    }
    const readTs = page?.readTs ?? (await this.#readTs(consistency.level, scope));
    const res = await downstream("journal", () =>
      this.deps.journal.getRecordHistory({ collection, id, limit: HISTORY_FETCH_LIMIT }, callOptions(scope, this.deps.downstreamTimeoutMs)),
    );
    const after = res.versions.filter((v) => page === undefined || comparePosition(v, page) > 0);
    if (res.versions.length === 0 && page === undefined) await this.#mustHaveExisted(collection, scope);
    const pageVersions = after.slice(0, limit);
    const last = pageVersions[pageVersions.length - 1];
    return {
      versions: pageVersions.map((v) => {
        const what = `version at ${v.partition}/${v.offset}`;
        const metadata = metadataFromJson(v.metadataJson, `${what} metadata`);
        return create(RecordVersionSchema, {
          ts: v.ts,
          partition: v.partition,
          offset: v.offset,
          op: v.op === RecordOp.UPSERT ? Op.UPSERT : v.op === RecordOp.DELETE ? Op.DELETE : Op.UNSPECIFIED,
          requestId: v.requestId,
          principal: v.principal,
          vector: bytesToVector(v.vectorF32, `${what} vector`),
          ...(metadata !== undefined ? { metadata } : {}),
        });
      }),
      nextPageToken:
        after.length > limit && last !== undefined
          ? encodeHistoryPageToken({ collection, id, ts: last.ts, partition: last.partition, offset: last.offset, readTs })
          : "",
      readTs,
      sessionToken: nextSessionToken(token, readTs),
    };
  }

  /** NOT_FOUND unless the collection exists, or existed (has operations in the journal). */
  async #mustHaveExisted(collection: string, scope: Scope): Promise<void> {
    if (this.deps.catalog.cached(collection) !== undefined) return;
    try {
      await this.deps.catalog.collection(collection, scope.signal);
      return;
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
    }
    const ops = await downstream("journal", () => this.deps.journal.listEntries({ collection, limit: 1 }, callOptions(scope, this.deps.downstreamTimeoutMs)));
    if (ops.operations.length === 0) {
      throw new NotFoundError(`collection ${JSON.stringify(collection)} does not exist and has no history in the journal`, {
        details: { collection },
      });
    }
  }

  async requestLineage(req: GetRequestLineageRequest, scope: Scope): Promise<Init<GetRequestLineageResponse>> {
    if (req.requestId === "") throw invalidField("request_id", "required");
    const requestId = checkRequestId(req.requestId);
    const { consistency, token } = resolveConsistency(req.consistency, this.deps.defaultStalenessMs);
    const readTs = await this.#readTs(consistency.level, scope);
    const res = await downstream("journal", () => this.deps.journal.getRequestEntries({ requestId }, callOptions(scope, this.deps.downstreamTimeoutMs)));
    if (res.entries.length === 0) {
      throw new NotFoundError(`no journal entry has request_id ${JSON.stringify(requestId)}`, { details: { field: "request_id" } });
    }
    // Readers of every collection the request wrote; admins for catalog changes.
    for (const e of res.entries) {
      if (e.payload.case === "data") requireCollection(scope.caller, e.payload.value.collection, "reader", "GetRequestLineage");
      else if (e.payload.case === "ddl") requireCollection(scope.caller, e.payload.value.collection, "admin", "GetRequestLineage of a catalog change");
    }
    const replicasOf = (e: JournalEntry): string[] => {
      if (e.payload.case !== "data") return [];
      const { collection, shard } = e.payload.value;
      return this.deps.catalog.cached(collection)?.entry.shards.find((p) => p.shard === shard)?.replicas ?? [];
    };
    const statuses = await fetchStorageStatuses(this.deps.statuses, res.entries.flatMap(replicasOf), scope);
    const entries: LineageEntry[] = [...res.entries].sort(comparePosition).map((e) => {
      const p = e.payload;
      const replicas: ReplicaApplyStatus[] = replicasOf(e).map((node) => {
        const status = statuses.get(node);
        const state = p.case === "data" ? status?.shards.find((s) => s.collection === p.value.collection && s.shard === p.value.shard) : undefined;
        const applied = state?.applied ?? status?.partitions.find((a) => a.partition === e.partition);
        const appliedOffset = applied?.partition === e.partition ? applied.offset : 0n;
        return create(ReplicaApplyStatusSchema, {
          node,
          applied: applied !== undefined && appliedOffset >= e.offset,
          appliedOffset,
          appliedTs: applied?.partition === e.partition ? applied.ts : 0n,
          alive: (this.deps.catalog.node(node)?.alive ?? false) && status !== undefined,
        });
      });
      return create(LineageEntrySchema, {
        position: { partition: e.partition, offset: e.offset, ts: e.ts },
        type: operationType(e, p.case === "ddl" ? p.value.op : undefined),
        collection: p.case === "data" || p.case === "ddl" ? p.value.collection : "",
        shard: p.case === "data" ? p.value.shard : 0,
        upsertedIds: p.case === "data" ? p.value.upserts.map((u) => u.id) : [],
        deletedIds: p.case === "data" ? p.value.deleteIds : [],
        principal: p.case === "data" || p.case === "ddl" ? p.value.principal : "",
        replicas,
      });
    });
    return { requestId, entries, readTs, sessionToken: nextSessionToken(token, readTs) };
  }

  async listOperations(req: ListOperationsRequest, scope: Scope): Promise<Init<ListOperationsResponse>> {
    if (req.toTs !== 0n && req.toTs < req.fromTs) throw invalidField("to_ts", `${req.toTs} is before from_ts ${req.fromTs}`);
    const limit = checkLimit(req.limit);
    const token = parseSessionToken(req.consistency?.sessionToken ?? "", "consistency.session_token");
    const fingerprint = filterFingerprint(canonicalJson({ c: req.collection, p: req.principal, f: req.fromTs.toString(), t: req.toTs.toString() }));
    let readTs: bigint;
    let journalToken = "";
    if (req.pageToken !== "") {
      const page = decodeOperationsPageToken(req.pageToken);
      if (page.filter !== fingerprint) throw invalidField("page_token", "the token belongs to another query (collection, principal or time range differ)");
      readTs = page.readTs;
      journalToken = page.journalToken;
    } else {
      const { consistency } = resolveConsistency(req.consistency, this.deps.defaultStalenessMs);
      readTs = await this.#readTs(consistency.level, scope);
    }
    // Paging is stable: nothing after the first page's read_ts is listed.
    const toTs = readTs === 0n ? req.toTs : req.toTs === 0n || req.toTs > readTs ? readTs : req.toTs;
    if (toTs !== 0n && toTs < req.fromTs) {
      return { operations: [], nextPageToken: "", readTs, sessionToken: nextSessionToken(token, readTs) };
    }
    const res = await downstream("journal", () =>
      this.deps.journal.listEntries(
        { collection: req.collection, principal: req.principal, fromTs: req.fromTs, toTs, limit, pageToken: journalToken },
        callOptions(scope, this.deps.downstreamTimeoutMs),
      ),
    );
    // The audit summary does not say which DDL it was: read those (small) entries.
    const ddlRefs = res.operations.filter((o) => o.type === EntryType.DDL).map((o) => ({ partition: o.partition, offset: o.offset }));
    const ddlOps = new Map<string, DdlOp>();
    if (ddlRefs.length > 0) {
      const read = await downstream("journal", () => this.deps.journal.readEntries({ refs: ddlRefs }, callOptions(scope, this.deps.downstreamTimeoutMs)));
      for (const e of read.entries) if (e.payload.case === "ddl") ddlOps.set(`${e.partition}/${e.offset}`, e.payload.value.op);
    }
    const operations: Operation[] = res.operations.map((o) => {
      const type = operationType(o, ddlOps.get(`${o.partition}/${o.offset}`));
      if (type === OperationType.UNSPECIFIED) {
        throw new InternalError(`journal entry ${o.partition}/${o.offset} listed as an operation has type ${o.type}`);
      }
      return create(OperationSchema, {
        ts: o.ts,
        partition: o.partition,
        offset: o.offset,
        type,
        collection: o.collection,
        requestId: o.requestId,
        principal: o.principal,
        upserts: o.upserts,
        deletes: o.deletes,
      });
    });
    return {
      operations,
      nextPageToken: res.nextPageToken === "" ? "" : encodeOperationsPageToken({ journalToken: res.nextPageToken, filter: fingerprint, readTs }),
      readTs,
      sessionToken: nextSessionToken(token, readTs),
    };
  }
}
