// An in-memory VecraftService that behaves like the gateway where the CLI can tell:
// whole-batch validation with messages naming the item (and the `vecraft-index` detail),
// idempotent retries by request_id, HLC-like session tokens, history and lineage.
import { clone, create } from "@bufbuild/protobuf";
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import type { ConnectRouter, HandlerContext, ServiceImpl, Transport } from "@connectrpc/connect";
import { InvalidArgumentError, NotFoundError, abortableSleep, toConnectError } from "@vecraft/common";
import { CollectionSchema, CollectionStatsSchema, Metric, NodeRole, Op, OperationType, VecraftService } from "@vecraft/rpc";
import type { Collection, Operation, RecordVersion, UpsertResponse, VectorRecord } from "@vecraft/rpc";

/** 2025-01-01T00:00:00.000Z as a packed HLC timestamp: output with times is deterministic. */
export const BASE_TS = BigInt(Date.UTC(2025, 0, 1)) << 16n;

export interface Call {
  method: string;
  request: Record<string, unknown>;
  headers: Headers;
}

interface Stored {
  collection: Collection;
  records: Map<string, VectorRecord>;
  history: Map<string, RecordVersion[]>;
}

export class FakeServer {
  readonly calls: Call[] = [];
  readonly collections = new Map<string, Stored>();
  readonly operations: Operation[] = [];
  readonly transport: Transport;
  /** Upserts answered, by request id: retries get the original answer. */
  readonly #byRequest = new Map<string, UpsertResponse>();
  readonly #failures = new Map<string, (() => ConnectError)[]>();
  clock = BASE_TS;
  /** Delay of each Upsert, to observe concurrency. */
  upsertDelayMs = 0;
  inFlight = 0;
  maxInFlight = 0;

  constructor() {
    this.transport = createRouterTransport(this.routes);
  }

  failNext(method: string, ...errors: (() => ConnectError)[]): void {
    this.#failures.set(method, [...(this.#failures.get(method) ?? []), ...errors]);
  }

  callsOf(method: string): Call[] {
    return this.calls.filter((c) => c.method === method);
  }

  readonly routes = (router: ConnectRouter): void => {
    router.service(VecraftService, this.#impl());
  };

  #enter(method: string, request: object, ctx: HandlerContext): void {
    this.calls.push({ method, request: { ...request }, headers: new Headers(ctx.requestHeader) });
    const next = this.#failures.get(method)?.shift();
    if (next !== undefined) throw next();
  }

  #tick(causal = ""): bigint {
    const c = /^[0-9]+$/.test(causal) ? BigInt(causal) : 0n;
    // One millisecond per write keeps the times in the output readable.
    this.clock = (c > this.clock ? c : this.clock) + (1n << 16n);
    return this.clock;
  }

  #get(name: string): Stored {
    const s = this.collections.get(name);
    if (s === undefined) throw toConnectError(new NotFoundError(`collection ${JSON.stringify(name)} does not exist`));
    return s;
  }

  #validate(s: Stored, records: VectorRecord[]): void {
    const invalid = (i: number, field: string, problem: string): ConnectError =>
      toConnectError(new InvalidArgumentError(`records[${i}]${field}: ${problem}`, { details: { field: `records[${i}]${field}`, index: i } }));
    if (records.length === 0) throw toConnectError(new InvalidArgumentError("records: the batch is empty (at least 1 record)"));
    if (records.length > 1000) throw toConnectError(new InvalidArgumentError(`records: ${records.length} records, at most 1000`));
    const seen = new Map<string, number>();
    records.forEach((r, i) => {
      if (r.id === "") throw invalid(i, ".id", "empty");
      const first = seen.get(r.id);
      if (first !== undefined) throw invalid(i, ".id", `duplicate of records[${first}].id ${JSON.stringify(r.id)}`);
      seen.set(r.id, i);
      if (r.vector.length !== s.collection.dimension) {
        throw invalid(i, ".vector", `expected ${s.collection.dimension} dimensions, got ${r.vector.length}`);
      }
      const bad = r.vector.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) throw invalid(i, `.vector[${bad}]`, "not a finite number");
    });
  }

  #impl(): Partial<ServiceImpl<typeof VecraftService>> {
    return {
      createCollection: (req, ctx) => {
        this.#enter("CreateCollection", req, ctx);
        if (!/^[a-zA-Z][a-zA-Z0-9_-]{0,63}$/.test(req.name)) {
          throw toConnectError(new InvalidArgumentError(`name: ${JSON.stringify(req.name)} must match [a-zA-Z][a-zA-Z0-9_-]{0,63}`));
        }
        if (this.collections.has(req.name)) throw new ConnectError(`collection ${JSON.stringify(req.name)} already exists`, Code.AlreadyExists);
        if (req.metric === Metric.UNSPECIFIED) throw toConnectError(new InvalidArgumentError("metric: required"));
        const ts = this.#tick();
        const collection = create(CollectionSchema, {
          name: req.name,
          dimension: req.dimension,
          metric: req.metric,
          shards: req.shards || 1,
          replicationFactor: req.replicationFactor || 1,
          hnsw: { m: req.hnsw?.m || 16, efConstruction: req.hnsw?.efConstruction || 128, efSearch: req.hnsw?.efSearch || 64 },
          fields: req.fields,
          createdTs: ts,
        });
        this.collections.set(req.name, { collection, records: new Map(), history: new Map() });
        this.operations.push({
          $typeName: "vecraft.v1.Operation",
          ts,
          partition: 0,
          offset: BigInt(this.operations.length + 1),
          type: OperationType.CREATE_COLLECTION,
          collection: req.name,
          shard: 0,
          requestId: req.requestId,
          principal: "admin",
          upserts: 0,
          deletes: 0,
        });
        return { collection };
      },
      describeCollection: (req, ctx) => {
        this.#enter("DescribeCollection", req, ctx);
        const s = this.#get(req.name);
        const collection = clone(CollectionSchema, s.collection);
        const n = BigInt(s.records.size);
        collection.stats = create(CollectionStatsSchema, {
          records: n,
          shards: Array.from({ length: collection.shards }, (_, shard) => ({
            shard,
            partition: shard % 2,
            records: shard === 0 ? n : 0n,
            appliedOffset: 10n + BigInt(shard),
            appliedTs: this.clock,
            node: shard === 1 ? "" : "storage-1",
            available: shard !== 1,
          })),
        });
        return { collection };
      },
      listCollections: (req, ctx) => {
        this.#enter("ListCollections", req, ctx);
        return { collections: [...this.collections.values()].map((s) => s.collection) };
      },
      dropCollection: (req, ctx) => {
        this.#enter("DropCollection", req, ctx);
        this.#get(req.name);
        this.collections.delete(req.name);
        return {};
      },
      upsert: async (req, ctx) => {
        this.#enter("Upsert", req, ctx);
        const s = this.#get(req.collection);
        const again = this.#byRequest.get(req.requestId);
        if (again !== undefined) return again;
        this.#validate(s, req.records);
        this.inFlight++;
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
        try {
          if (this.upsertDelayMs > 0) await abortableSleep(this.upsertDelayMs, ctx.signal);
        } finally {
          this.inFlight--;
        }
        const ts = this.#tick(req.sessionToken);
        const offset = BigInt(this.operations.length + 1);
        for (const r of req.records) {
          s.records.set(r.id, r);
          const versions = s.history.get(r.id) ?? [];
          versions.push({
            $typeName: "vecraft.v1.RecordVersion",
            ts,
            partition: 0,
            offset,
            op: Op.UPSERT,
            requestId: req.requestId,
            principal: ctx.requestHeader.get("authorization") === null ? "anonymous" : "writer-key",
            vector: r.vector,
            ...(r.metadata !== undefined ? { metadata: r.metadata } : {}),
          });
          s.history.set(r.id, versions);
        }
        this.operations.push({
          $typeName: "vecraft.v1.Operation",
          ts,
          partition: 0,
          offset,
          type: OperationType.WRITE,
          collection: req.collection,
          shard: 0,
          requestId: req.requestId,
          principal: "writer-key",
          upserts: req.records.length,
          deletes: 0,
        });
        const res: UpsertResponse = {
          $typeName: "vecraft.v1.UpsertResponse",
          upserted: req.records.length,
          sessionToken: ts.toString(),
          requestId: req.requestId,
          entries: [{ $typeName: "vecraft.v1.EntryPosition", partition: 0, offset, ts }],
        };
        this.#byRequest.set(req.requestId, res);
        return res;
      },
      search: (req, ctx) => {
        this.#enter("Search", req, ctx);
        const s = this.#get(req.collection);
        if (req.vector.length !== s.collection.dimension) {
          throw toConnectError(new InvalidArgumentError(`vector: expected ${s.collection.dimension} dimensions, got ${req.vector.length}`));
        }
        const l2 = (v: number[]): number => Math.sqrt(v.reduce((acc, x, i) => acc + (x - (req.vector[i] ?? 0)) ** 2, 0));
        const hits = [...s.records.values()]
          .filter((r) => matches(r.metadata, req.filter))
          .map((r) => ({ r, score: l2(r.vector) }))
          .sort((a, b) => a.score - b.score || (a.r.id < b.r.id ? -1 : 1))
          .slice(0, req.k)
          .map(({ r, score }) => ({
            id: r.id,
            score,
            vector: req.includeVectors ? r.vector : [],
            ...(req.includeMetadata ? { metadata: r.metadata ?? {} } : {}),
          }));
        return { hits, readTs: this.clock, sessionToken: this.clock.toString() };
      },
      get: (req, ctx) => {
        this.#enter("Get", req, ctx);
        const s = this.#get(req.collection);
        return {
          records: req.ids.flatMap((id) => s.records.get(id) ?? []),
          missingIds: req.ids.filter((id) => !s.records.has(id)),
          readTs: this.clock,
          sessionToken: this.clock.toString(),
        };
      },
      getRecordHistory: (req, ctx) => {
        this.#enter("GetRecordHistory", req, ctx);
        const s = this.#get(req.collection);
        const all = s.history.get(req.id) ?? [];
        // Pages of one version, to exercise paging.
        const start = req.pageToken === "" ? 0 : Number(req.pageToken);
        return {
          versions: all.slice(start, start + 1),
          nextPageToken: start + 1 < all.length ? String(start + 1) : "",
          readTs: this.clock,
          sessionToken: this.clock.toString(),
        };
      },
      getRequestLineage: (req, ctx) => {
        this.#enter("GetRequestLineage", req, ctx);
        const ops = this.operations.filter((o) => o.requestId === req.requestId);
        if (ops.length === 0) throw toConnectError(new NotFoundError(`no journal entry has request_id ${JSON.stringify(req.requestId)}`));
        return {
          requestId: req.requestId,
          entries: ops.map((o) => ({
            position: { partition: o.partition, offset: o.offset, ts: o.ts },
            type: o.type,
            collection: o.collection,
            shard: o.shard,
            upsertedIds: Array.from({ length: o.upserts }, (_, i) => `id${i}`),
            deletedIds: [],
            principal: o.principal,
            replicas:
              o.type === OperationType.WRITE
                ? [
                    {
                      node: "storage-1",
                      applied: true,
                      appliedAt: timestampFromMs(Date.UTC(2025, 0, 1)),
                      appliedOffset: o.offset,
                      appliedTs: o.ts,
                      alive: true,
                    },
                    { node: "storage-2", applied: false, appliedOffset: o.offset - 1n, appliedTs: o.ts - 1n, alive: false },
                  ]
                : [],
          })),
          readTs: this.clock,
          sessionToken: this.clock.toString(),
        };
      },
      listOperations: (req, ctx) => {
        this.#enter("ListOperations", req, ctx);
        const all = this.operations.filter(
          (o) =>
            (req.collection === "" || o.collection === req.collection) &&
            (req.principal === "" || o.principal === req.principal) &&
            o.ts >= req.fromTs &&
            (req.toTs === 0n || o.ts <= req.toTs),
        );
        const start = req.pageToken === "" ? 0 : Number(req.pageToken);
        const limit = req.limit || 100;
        return {
          operations: all.slice(start, start + limit),
          nextPageToken: start + limit < all.length ? String(start + limit) : "",
          readTs: this.clock,
          sessionToken: this.clock.toString(),
        };
      },
      getClusterStatus: (req, ctx) => {
        this.#enter("GetClusterStatus", req, ctx);
        return {
          nodes: [
            {
              id: "standalone",
              roles: [NodeRole.GATEWAY, NodeRole.QUERY_PROCESSOR, NodeRole.STORAGE, NodeRole.JOURNAL, NodeRole.META],
              address: "127.0.0.1:8080",
              alive: true,
            },
            { id: "storage-2", roles: [NodeRole.STORAGE], address: "127.0.0.1:7002", alive: false },
          ],
          partitions: [{ partition: 0, leader: "standalone", epoch: 2, commitOffset: 1234n, closedTs: BASE_TS, replicas: ["standalone"] }],
          shardReplicas: [
            { collection: "docs", shard: 0, partition: 0, node: "standalone", appliedOffset: 1234n, appliedTs: BASE_TS, lag: 0n, lagMs: 0n, serving: true },
            { collection: "docs", shard: 0, partition: 0, node: "storage-2", appliedOffset: 1200n, appliedTs: BASE_TS, lag: 34n, lagMs: 1500n, serving: false },
          ],
        };
      },
    };
  }
}

function matches(md: JsonObject | undefined, filter: JsonObject | undefined): boolean {
  if (filter === undefined) return true;
  return Object.entries(filter).every(([k, v]) => (md ?? {})[k] === v);
}
