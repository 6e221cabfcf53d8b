// CreateCollection, DescribeCollection, ListCollections, DropCollection. The meta-manager
// owns the catalog (and journals the DDL itself, with the request id and principal the
// gateway passes); the gateway validates, forwards, and keeps its catalog cache in step
// with what it just changed.
import { randomUUID } from "node:crypto";
import { create, equals } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { AlreadyExistsError, InternalError, NotFoundError, type Logger } from "@vecraft/common";
import { specToProto, validateCollectionSpec } from "@vecraft/model";
import {
  CollectionSchema,
  CollectionStatsSchema,
  DdlOp,
  ShardStatsSchema,
  type CatalogCollection,
  type Collection,
  type CreateCollectionRequest,
  type CreateCollectionResponse,
  type DescribeCollectionRequest,
  type DescribeCollectionResponse,
  type DropCollectionRequest,
  type JournalService,
  type ListCollectionsResponse,
  type MetaService,
  type ShardStats,
} from "@vecraft/rpc";
import { inScope } from "./auth.js";
import type { CatalogCache } from "./catalog.js";
import { PRINCIPAL_HEADER, REQUEST_ID_HEADER, TRACE_ID_HEADER, callOptions, downstream, downstreamError, type Scope } from "./scope.js";
import { fetchStorageStatuses, type StatusFetcherDeps } from "./storage.js";
import { checkCollectionName, checkRequestId } from "./validate.js";

export interface CollectionsDeps {
  readonly meta: Client<typeof MetaService>;
  readonly journal: Client<typeof JournalService>;
  readonly catalog: CatalogCache;
  readonly statuses: StatusFetcherDeps;
  readonly logger: Logger;
  readonly downstreamTimeoutMs: number;
}

type Init<T> = Omit<T, "$typeName" | "$unknown">;

/** The public Collection of a catalog entry, without stats. */
function publicCollection(entry: CatalogCollection | undefined): Collection {
  const c = entry?.collection;
  if (c === undefined) throw new InternalError("the meta-manager returned a catalog entry without a collection");
  return create(CollectionSchema, { ...c, stats: undefined });
}

export class Collections {
  constructor(private readonly deps: CollectionsDeps) {}

  async create(req: CreateCollectionRequest, scope: Scope): Promise<Init<CreateCollectionResponse>> {
    const requestId = checkRequestId(req.requestId) || randomUUID();
    const spec = validateCollectionSpec(req);
    try {
      const res = await this.deps.meta.createCollection(
        { collection: specToProto(spec), requestId, principal: scope.caller.principal },
        callOptions(scope, this.deps.downstreamTimeoutMs, this.#identity(requestId, scope)),
      );
      await this.#catchUp(res.revision, scope);
      return { collection: publicCollection(res.collection) };
    } catch (e) {
      if (e instanceof ConnectError && e.code === Code.AlreadyExists && req.requestId !== "") {
        // A retry of a create that succeeded: the journal's DDL entry carries the request id.
        if (await this.#wasDone(requestId, spec.name, DdlOp.CREATE_COLLECTION, scope)) {
          const existing = await this.deps.catalog.collection(spec.name, scope.signal);
          // The same request id with another spec is a different request, not a retry.
          if (!equals(CollectionSchema, specToProto(existing.spec), specToProto(spec))) {
            throw new AlreadyExistsError(`collection ${JSON.stringify(spec.name)} already exists with a different spec; request_id ${JSON.stringify(requestId)} created it`, {
              details: { field: "request_id" },
            });
          }
          return { collection: publicCollection(existing.entry) };
        }
      }
      throw downstreamError("meta-manager", e);
    }
  }

  async describe(req: DescribeCollectionRequest, scope: Scope): Promise<Init<DescribeCollectionResponse>> {
    const name = checkCollectionName(req.name, "name");
    // The schema is the meta store's current one, not the cache's.
    await downstream("meta-manager", () => this.deps.catalog.refreshAfterNow(scope.signal));
    const col = this.deps.catalog.cached(name);
    if (col === undefined) throw new NotFoundError(`collection ${JSON.stringify(name)} does not exist`, { details: { collection: name } });
    const replicaNodes = col.entry.shards.flatMap((p) => p.replicas);
    const statuses = await fetchStorageStatuses(this.deps.statuses, replicaNodes, scope);
    const shards: ShardStats[] = [];
    let records = 0n;
    for (let shard = 0; shard < col.spec.shards; shard++) {
      const placement = col.entry.shards.find((p) => p.shard === shard);
      const partition = placement?.partition ?? col.partitionOf[shard] ?? 0;
      // Prefer a live node, then the placement order.
      const candidates = [...(placement?.replicas ?? [])].sort(
        (a, b) => Number(this.deps.catalog.node(b)?.alive ?? false) - Number(this.deps.catalog.node(a)?.alive ?? false),
      );
      let stats: ShardStats = create(ShardStatsSchema, { shard, partition, available: false });
      for (const node of candidates) {
        const status = statuses.get(node);
        const state = status?.shards.find((s) => s.collection === name && s.shard === shard);
        if (status === undefined || state === undefined) continue;
        stats = create(ShardStatsSchema, {
          shard,
          partition,
          records: state.records,
          appliedOffset: state.applied?.offset ?? 0n,
          appliedTs: state.applied?.ts ?? 0n,
          node: status.node !== "" ? status.node : node,
          available: true,
        });
        records += state.records;
        break;
      }
      shards.push(stats);
    }
    return {
      collection: create(CollectionSchema, { ...publicCollection(col.entry), stats: create(CollectionStatsSchema, { records, shards }) }),
    };
  }

  async list(scope: Scope): Promise<Init<ListCollectionsResponse>> {
    await downstream("meta-manager", () => this.deps.catalog.refreshAfterNow(scope.signal));
    return {
      collections: this.deps.catalog
        .collections()
        .filter((c) => inScope(scope.caller, c.spec.name))
        .map((c) => publicCollection(c.entry)),
    };
  }

  async drop(req: DropCollectionRequest, scope: Scope): Promise<void> {
    const name = checkCollectionName(req.name, "name");
    const requestId = checkRequestId(req.requestId) || randomUUID();
    try {
      const res = await this.deps.meta.dropCollection(
        { name, requestId, principal: scope.caller.principal },
        callOptions(scope, this.deps.downstreamTimeoutMs, this.#identity(requestId, scope)),
      );
      await this.#catchUp(res.revision, scope);
    } catch (e) {
      if (e instanceof ConnectError && e.code === Code.NotFound) {
        if (req.requestId !== "" && (await this.#wasDone(requestId, name, DdlOp.DROP_COLLECTION, scope))) return;
        throw new NotFoundError(`collection ${JSON.stringify(name)} does not exist`, { cause: e, details: { collection: name } });
      }
      throw downstreamError("meta-manager", e);
    }
  }

  #identity(requestId: string, scope: Scope): Record<string, string> {
    return { [REQUEST_ID_HEADER]: requestId, [PRINCIPAL_HEADER]: scope.caller.principal, [TRACE_ID_HEADER]: scope.traceId };
  }

  /** Makes the cache at least as new as a change this gateway just made (best effort). */
  async #catchUp(revision: bigint, scope: Scope): Promise<void> {
    if ((this.deps.catalog.current?.revision ?? 0n) >= revision) return;
    try {
      await this.deps.catalog.refreshAfterNow(scope.signal);
    } catch (e) {
      // The change is made; the watch will bring the cache up to date.
      this.deps.logger.warn("catalog re-read after a change failed", { revision, error: e });
    }
  }

  /** Whether the journal holds a DDL entry `op` on `collection` made by `requestId`. */
  async #wasDone(requestId: string, collection: string, op: DdlOp, scope: Scope): Promise<boolean> {
    try {
      const res = await this.deps.journal.getRequestEntries({ requestId }, callOptions(scope, this.deps.downstreamTimeoutMs));
      return res.entries.some((e) => e.payload.case === "ddl" && e.payload.value.collection === collection && e.payload.value.op === op);
    } catch (e) {
      // Cannot tell: report the meta-manager's answer rather than guess.
      this.deps.logger.warn("could not check whether a DDL request was a retry", { requestId, error: e });
      return false;
    }
  }
}
