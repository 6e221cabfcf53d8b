// An in-memory VecraftService for the SDK's tests: it records every request, answers
// with increasing numeric session tokens, and fails calls on demand.
import { clone, create } from "@bufbuild/protobuf";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import type { ConnectRouter, HandlerContext, ServiceImpl, Transport } from "@connectrpc/connect";
import { CollectionSchema, CollectionStatsSchema, Consistency, NodeRole, Op, OperationType, VecraftService } from "@vecraft/rpc";
import type { Collection, VectorRecord } from "@vecraft/rpc";

export interface RecordedCall {
  method: string;
  request: Record<string, unknown>;
  headers: Headers;
}

export class FakeVecraft {
  readonly calls: RecordedCall[] = [];
  readonly collections = new Map<string, Collection>();
  readonly records = new Map<string, Map<string, VectorRecord>>();
  /** The fake's clock: every write advances it; it is also every read's read_ts. */
  clock = 1000n;
  /** When set, reads answer with this session token instead of the clock. */
  readToken: string | undefined;
  readonly #failures = new Map<string, (() => ConnectError)[]>();
  readonly transport: Transport;

  constructor() {
    this.transport = createRouterTransport(this.routes);
  }

  /** Makes the next calls of `method` fail, one error per call. */
  failNext(method: string, ...errors: (() => ConnectError)[]): void {
    this.#failures.set(method, [...(this.#failures.get(method) ?? []), ...errors]);
  }

  callsOf(method: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  readonly routes = (router: ConnectRouter): void => {
    router.service(VecraftService, this.#impl());
  };

  #enter(method: string, request: object, ctx: HandlerContext): void {
    this.calls.push({ method, request: { ...request }, headers: new Headers(ctx.requestHeader) });
    const queued = this.#failures.get(method);
    const next = queued?.shift();
    if (next !== undefined) throw next();
  }

  #write(token: string): string {
    const causal = /^[0-9]+$/.test(token) ? BigInt(token) : 0n;
    this.clock = (causal > this.clock ? causal : this.clock) + 1n;
    return this.clock.toString();
  }

  #readToken(consistency: { level: Consistency; sessionToken: string } | undefined): string {
    if (this.readToken !== undefined) return this.readToken;
    const sent = consistency?.level === Consistency.SESSION && /^[0-9]+$/.test(consistency.sessionToken) ? BigInt(consistency.sessionToken) : 0n;
    return (sent > this.clock ? sent : this.clock).toString();
  }

  #collection(name: string): Collection {
    const c = this.collections.get(name);
    if (c === undefined) throw new ConnectError(`collection "${name}" does not exist`, Code.NotFound);
    return c;
  }

  #impl(): Partial<ServiceImpl<typeof VecraftService>> {
    // The generator method below cannot be an arrow function; it reaches the fake here.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return {
      createCollection: (req, ctx) => {
        this.#enter("CreateCollection", req, ctx);
        if (this.collections.has(req.name)) throw new ConnectError(`collection "${req.name}" already exists`, Code.AlreadyExists);
        const collection = create(CollectionSchema, {
          name: req.name,
          dimension: req.dimension,
          metric: req.metric,
          shards: req.shards || 1,
          replicationFactor: req.replicationFactor || 1,
          hnsw: { m: req.hnsw?.m || 16, efConstruction: req.hnsw?.efConstruction || 128, efSearch: req.hnsw?.efSearch || 64 },
          fields: req.fields,
          createdTs: BigInt(this.#write("")),
        });
        this.collections.set(req.name, collection);
        this.records.set(req.name, new Map());
        return { collection };
      },
      describeCollection: (req, ctx) => {
        this.#enter("DescribeCollection", req, ctx);
        const c = this.#collection(req.name);
        const n = BigInt(this.records.get(req.name)?.size ?? 0);
        const collection = clone(CollectionSchema, c);
        collection.stats = create(CollectionStatsSchema, {
          records: n,
          shards: [{ shard: 0, partition: 0, records: n, appliedOffset: 7n, appliedTs: this.clock, node: "node-1", available: true }],
        });
        return { collection };
      },
      listCollections: (req, ctx) => {
        this.#enter("ListCollections", req, ctx);
        return { collections: [...this.collections.values()] };
      },
      dropCollection: (req, ctx) => {
        this.#enter("DropCollection", req, ctx);
        this.#collection(req.name);
        this.collections.delete(req.name);
        return {};
      },
      upsert: (req, ctx) => {
        this.#enter("Upsert", req, ctx);
        const c = this.#collection(req.collection);
        req.records.forEach((r, i) => {
          if (r.vector.length !== c.dimension) {
            throw new ConnectError(`records[${i}].vector: expected ${c.dimension} dimensions, got ${r.vector.length}`, Code.InvalidArgument);
          }
        });
        const store = this.records.get(req.collection)!;
        for (const r of req.records) store.set(r.id, r);
        const token = this.#write(req.sessionToken);
        return { upserted: req.records.length, sessionToken: token, requestId: req.requestId, entries: [{ partition: 0, offset: 1n, ts: BigInt(token) }] };
      },
      delete: (req, ctx) => {
        this.#enter("Delete", req, ctx);
        const store = this.records.get(this.#collection(req.collection).name)!;
        for (const id of req.ids) store.delete(id);
        const token = this.#write(req.sessionToken);
        return { deleted: req.ids.length, sessionToken: token, requestId: req.requestId, entries: [] };
      },
      search: (req, ctx) => {
        this.#enter("Search", req, ctx);
        this.#collection(req.collection);
        const dist = (v: number[]): number => v.reduce((s, x, i) => s + (x - (req.vector[i] ?? 0)) ** 2, 0);
        const hits = [...this.records.get(req.collection)!.values()]
          .map((r) => ({ r, d: dist(r.vector) }))
          .sort((a, b) => a.d - b.d || (a.r.id < b.r.id ? -1 : 1))
          .slice(0, req.k)
          .map(({ r, d }) => ({
            id: r.id,
            score: d,
            ...(req.includeMetadata ? { metadata: r.metadata ?? {} } : {}),
            vector: req.includeVectors ? r.vector : [],
          }));
        return { hits, readTs: this.clock, sessionToken: this.#readToken(req.consistency) };
      },
      get: (req, ctx) => {
        this.#enter("Get", req, ctx);
        const store = this.records.get(this.#collection(req.collection).name)!;
        const records = req.ids.flatMap((id) => store.get(id) ?? []);
        return { records, missingIds: req.ids.filter((id) => !store.has(id)), readTs: this.clock, sessionToken: this.#readToken(req.consistency) };
      },
      query: (req, ctx) => {
        this.#enter("Query", req, ctx);
        const all = [...this.records.get(this.#collection(req.collection).name)!.values()]
          .filter((r) => matches(r.metadata, req.filter))
          .sort((a, b) => (a.id < b.id ? -1 : 1));
        const start = req.pageToken === "" ? 0 : Number(req.pageToken);
        const limit = req.limit || 100;
        const records = all.slice(start, start + limit);
        const next = start + limit < all.length ? String(start + limit) : "";
        return { records, nextPageToken: next, readTs: this.clock, sessionToken: this.#readToken(req.consistency) };
      },
      getRecordHistory: (req, ctx) => {
        this.#enter("GetRecordHistory", req, ctx);
        return {
          versions: [
            { ts: 1001n, partition: 0, offset: 2n, op: Op.UPSERT, requestId: "r1", principal: "alice", vector: [1, 2], metadata: { a: 1 } },
            { ts: 1002n, partition: 0, offset: 3n, op: Op.DELETE, requestId: "r2", principal: "bob", vector: [] },
          ],
          readTs: this.clock,
          sessionToken: this.#readToken(req.consistency),
        };
      },
      getRequestLineage: (req, ctx) => {
        this.#enter("GetRequestLineage", req, ctx);
        return {
          requestId: req.requestId,
          entries: [
            {
              position: { partition: 1, offset: 9n, ts: 1005n },
              type: OperationType.WRITE,
              collection: "docs",
              shard: 2,
              upsertedIds: ["a", "b"],
              deletedIds: [],
              principal: "alice",
              replicas: [
                { node: "s1", applied: true, appliedAt: { seconds: 1_700_000_000n, nanos: 0 }, appliedOffset: 9n, appliedTs: 1005n, alive: true },
                { node: "s2", applied: false, appliedOffset: 8n, appliedTs: 1004n, alive: false },
              ],
            },
          ],
          readTs: this.clock,
          sessionToken: this.#readToken(req.consistency),
        };
      },
      listOperations: (req, ctx) => {
        this.#enter("ListOperations", req, ctx);
        const ops = [1n, 2n, 3n].map((n) => ({
          ts: 1000n + n,
          partition: 0,
          offset: n,
          type: n === 1n ? OperationType.CREATE_COLLECTION : OperationType.WRITE,
          collection: "docs",
          shard: 0,
          requestId: `r${n}`,
          principal: "alice",
          upserts: n === 1n ? 0 : 5,
          deletes: 0,
        }));
        const page = req.pageToken === "" ? 0 : 1;
        return {
          operations: page === 0 ? ops.slice(0, 2) : ops.slice(2),
          nextPageToken: page === 0 ? "p2" : "",
          readTs: this.clock,
          sessionToken: this.#readToken(req.consistency),
        };
      },
      async *watchChanges(req, ctx) {
        self.#enter("WatchChanges", req, ctx);
        for (const ts of [1001n, 1002n, 1003n]) {
          if (ts < req.fromTs) continue;
          // One message per turn of the event loop, like a real stream.
          await new Promise((resolve) => setImmediate(resolve));
          yield {
            changes: [{ ts, partition: 0, offset: ts - 1000n, op: Op.UPSERT, id: `id${ts}`, vector: [], requestId: "r", principal: "p" }],
            resolvedTs: ts,
          };
          const injected = self.#failures.get("WatchChanges.mid")?.shift();
          if (injected !== undefined) throw injected();
        }
      },
      getClusterStatus: (req, ctx) => {
        this.#enter("GetClusterStatus", req, ctx);
        return {
          nodes: [{ id: "n1", roles: [NodeRole.GATEWAY, NodeRole.STORAGE], address: "127.0.0.1:7000", alive: true }],
          partitions: [{ partition: 0, leader: "n1", epoch: 3, commitOffset: 42n, closedTs: 1010n, replicas: ["n1"] }],
          shardReplicas: [{ collection: "docs", shard: 0, partition: 0, node: "n1", appliedOffset: 40n, appliedTs: 1008n, lag: 2n, lagMs: 5n, serving: true }],
        };
      },
    };
  }
}

export function createFake(): FakeVecraft {
  return new FakeVecraft();
}

function matches(md: JsonObject | undefined, filter: JsonObject | undefined): boolean {
  if (filter === undefined) return true;
  return Object.entries(filter).every(([k, v]) => (md ?? {})[k] === v);
}
