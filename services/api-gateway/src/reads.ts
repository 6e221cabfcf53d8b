// Search, Get and Query: validate against the collection's schema, hand the read to a
// query processor with its consistency made explicit, and convert the answer to the
// public messages. Every answer carries read_ts and session_token = max(token, read_ts).
import { create, type JsonObject } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { InvalidArgumentError } from "@vecraft/common";
import { compileFilter, validateQueryVector } from "@vecraft/model";
import {
  Consistency,
  SearchHitSchema,
  VectorRecordSchema,
  type GetRequest,
  type GetResponse,
  type QueryRequest,
  type QueryResponse,
  type QueryService,
  type ResolvedRead,
  type SearchRequest,
  type SearchResponse,
  type StoredRecord,
  type VectorRecord,
} from "@vecraft/rpc";
import type { CatalogCache } from "./catalog.js";
import { bytesToVector, canonicalJson, metadataFromJson, vectorToBytes } from "./codec.js";
import { resolveConsistency } from "./consistency.js";
import { decodeQueryPageToken, encodeQueryPageToken, filterFingerprint } from "./page-token.js";
import { callOptions, downstream, type Scope } from "./scope.js";
import { formatSessionToken, nextSessionToken } from "./session-token.js";
import { checkCollectionName, checkEf, checkIds, checkK, checkLimit } from "./validate.js";

export interface ReadLimits {
  readonly maxBatchRecords: number;
  readonly defaultStalenessMs: number;
  readonly downstreamTimeoutMs: number;
}

export interface ReaderDeps {
  readonly query: Client<typeof QueryService>;
  readonly catalog: CatalogCache;
  readonly limits: ReadLimits;
}

type Init<T> = Omit<T, "$typeName" | "$unknown">;

function readTsOf(read: ResolvedRead | undefined): bigint {
  return read?.readTs ?? 0n;
}

/**
 * The session token after a read: the replicas may have applied writes past read_ts, and
 * the answer may show them, so the token covers what was observed (monotonic reads even
 * when the next read lands on another replica).
 */
function observedOf(read: ResolvedRead | undefined): bigint {
  const r = read?.readTs ?? 0n;
  const o = read?.observedTs ?? 0n;
  return o > r ? o : r;
}

/** The filter as JSON text for the query processor; "" for none (or {}). */
function filterJson(filter: JsonObject | undefined): string {
  return filter === undefined || Object.keys(filter).length === 0 ? "" : JSON.stringify(filter);
}

export function toVectorRecord(r: StoredRecord): VectorRecord {
  const metadata = metadataFromJson(r.metadataJson, `record ${JSON.stringify(r.id)} metadata`);
  return create(VectorRecordSchema, {
    id: r.id,
    vector: bytesToVector(r.vectorF32, `record ${JSON.stringify(r.id)} vector`),
    ...(metadata !== undefined ? { metadata } : {}),
  });
}

export class Reader {
  constructor(private readonly deps: ReaderDeps) {}

  async search(req: SearchRequest, scope: Scope): Promise<Init<SearchResponse>> {
    const collection = checkCollectionName(req.collection);
    const k = checkK(req.k);
    const ef = checkEf(req.ef, k);
    const { consistency, token } = resolveConsistency(req.consistency, this.deps.limits.defaultStalenessMs);
    const col = await this.deps.catalog.collection(collection, scope.signal);
    const vector = validateQueryVector(col.spec, req.vector);
    compileFilter(col.spec, req.filter);
    const res = await downstream("query processor", () =>
      this.deps.query.search(
        {
          collection,
          vectorF32: vectorToBytes(vector),
          k,
          filterJson: filterJson(req.filter),
          ef,
          consistency,
          includeVectors: req.includeVectors,
          includeMetadata: req.includeMetadata,
          allowPartialResults: req.allowPartialResults,
        },
        callOptions(scope, this.deps.limits.downstreamTimeoutMs),
      ),
    );
    const readTs = readTsOf(res.read);
    return {
      hits: res.hits.map((h) => {
        const metadata = req.includeMetadata ? metadataFromJson(h.metadataJson, `hit ${JSON.stringify(h.id)} metadata`) : undefined;
        return create(SearchHitSchema, {
          id: h.id,
          score: h.score,
          vector: req.includeVectors ? bytesToVector(h.vectorF32, `hit ${JSON.stringify(h.id)} vector`) : [],
          ...(metadata !== undefined ? { metadata } : {}),
        });
      }),
      readTs,
      sessionToken: nextSessionToken(token, observedOf(res.read)),
      missingShards: res.missingShards,
    };
  }

  async get(req: GetRequest, scope: Scope): Promise<Init<GetResponse>> {
    const collection = checkCollectionName(req.collection);
    const ids = checkIds(req.ids, this.deps.limits.maxBatchRecords);
    const { consistency, token } = resolveConsistency(req.consistency, this.deps.limits.defaultStalenessMs);
    await this.deps.catalog.collection(collection, scope.signal);
    const res = await downstream("query processor", () =>
      this.deps.query.get({ collection, ids, consistency }, callOptions(scope, this.deps.limits.downstreamTimeoutMs)),
    );
    const found = new Map<string, StoredRecord>();
    for (const r of res.records) found.set(r.id, r);
    const records: VectorRecord[] = [];
    const missingIds: string[] = [];
    for (const id of ids) {
      const r = found.get(id);
      if (r === undefined) missingIds.push(id);
      else records.push(toVectorRecord(r));
    }
    const readTs = readTsOf(res.read);
    return { records, readTs, sessionToken: nextSessionToken(token, observedOf(res.read)), missingIds };
  }

  async query(req: QueryRequest, scope: Scope): Promise<Init<QueryResponse>> {
    const collection = checkCollectionName(req.collection);
    const limit = checkLimit(req.limit);
    const resolved = resolveConsistency(req.consistency, this.deps.limits.defaultStalenessMs);
    const col = await this.deps.catalog.collection(collection, scope.signal);
    compileFilter(col.spec, req.filter);
    const fingerprint = filterFingerprint(canonicalJson(req.filter ?? {}));
    let afterId = "";
    let consistency = resolved.consistency;
    let floor = 0n;
    if (req.pageToken !== "") {
      const page = decodeQueryPageToken(req.pageToken);
      if (page.collection !== collection || page.uid !== col.uid || page.filter !== fingerprint) {
        throw new InvalidArgumentError("page_token: the token belongs to another query (collection or filter differ)", { details: { field: "page_token" } });
      }
      afterId = page.afterId;
      floor = page.readTs;
      // Pages never go back in time: a later page reads at least at the previous page's
      // read_ts. STRONG is always newer; EVENTUAL promises nothing; BOUNDED and SESSION
      // become a SESSION read at max(token, previous read_ts).
      const level = consistency.level;
      if ((level === Consistency.BOUNDED || level === Consistency.SESSION) && floor > 0n) {
        const t = floor > resolved.token ? floor : resolved.token;
        consistency = { ...consistency, level: Consistency.SESSION, stalenessMs: 0, sessionToken: formatSessionToken(t) };
      }
    }
    const res = await downstream("query processor", () =>
      this.deps.query.query(
        { collection, filterJson: filterJson(req.filter), limit, afterId, consistency },
        callOptions(scope, this.deps.limits.downstreamTimeoutMs),
      ),
    );
    const readTs = readTsOf(res.read);
    const last = res.records[res.records.length - 1];
    const nextPageToken =
      res.hasMore && last !== undefined
        ? encodeQueryPageToken({ collection, uid: col.uid, filter: fingerprint, afterId: last.id, readTs: readTs > floor ? readTs : floor })
        : "";
    return {
      records: res.records.map((r) => toVectorRecord(r)),
      nextPageToken,
      readTs,
      sessionToken: nextSessionToken(resolved.token, observedOf(res.read)),
    };
  }
}
