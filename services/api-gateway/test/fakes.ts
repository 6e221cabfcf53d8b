// In-memory fakes of the internal services the gateway calls: MetaService,
// JournalService, QueryService and StorageService, all served through
// createRouterTransport. They share one state (FakeCluster) so that a write through the
// gateway is visible to the fake query processor, the audit APIs and the storage status.
import { randomUUID } from "node:crypto";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { encode } from "@vecraft/hlc";
import {
  JournalPartitionSchema,
  CatalogCollectionSchema,
  CatalogSchema,
  Consistency,
  DataPayloadSchema,
  DdlOp,
  DdlPayloadSchema,
  EntryType,
  JournalEntrySchema,
  JournalOperationSchema,
  JournalRecordVersionSchema,
  JournalService,
  Metric,
  MetaService,
  NodeRole,
  QueryService,
  RecordOp,
  RegisteredNodeSchema,
  ReplicaState,
  ShardPlacementSchema,
  StorageService,
  StoredRecordSchema,
  type AppendRequest,
  type Catalog,
  type CatalogCollection,
  type Collection,
  type DataPayload,
  type JournalEntry,
  type RegisteredNode,
  type QueryServiceGetRequest,
  type QueryServiceQueryRequest,
  type QueryServiceSearchRequest,
  type ReadConsistency,
  type ShardHit,
  type StoredRecord,
} from "@vecraft/rpc";

/** Resolves on the next notify() or after `ms`; rejects when the signal aborts. */
class Notifier {
  #waiters = new Set<() => void>();

  notify(): void {
    const ws = [...this.#waiters];
    this.#waiters.clear();
    for (const w of ws) w();
  }

  wait(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) {
        reject(new ConnectError("aborted", Code.Canceled));
        return;
      }
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.#waiters.delete(done);
        resolve();
      };
      const onAbort = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        reject(new ConnectError("aborted", Code.Canceled));
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(done);
    });
  }
}

interface ProducerRun {
  readonly firstSeq: bigint;
  readonly count: number;
  readonly results: { offset: bigint; ts: bigint }[];
}

export interface StorageNode {
  readonly id: string;
  readonly address: string;
}

export interface FakeOptions {
  partitions?: number;
  storageNodes?: number;
  /** Heartbeat of idle Subscribe streams. */
  heartbeatMs?: number;
  /** Ticks are appended only by tick() (deterministic tests). */
}

export interface RecordState {
  readonly id: string;
  readonly vector: Uint8Array;
  readonly metadataJson: string;
  readonly ts: bigint;
  readonly offset: bigint;
}

export class FakeCluster {
  readonly partitions: number;
  readonly heartbeatMs: number;
  readonly logs: JournalEntry[][];
  readonly producers = new Map<string, ProducerRun>();
  readonly appends: AppendRequest[] = [];
  readonly searches: QueryServiceSearchRequest[] = [];
  /** The deadline (ms left) each Search arrived with. */
  readonly searchDeadlines: (number | undefined)[] = [];
  readonly gets: QueryServiceGetRequest[] = [];
  readonly queries: QueryServiceQueryRequest[] = [];
  readonly metaHeaders: Headers[] = [];
  /** (request_id, principal) of each CreateCollection/DropCollection received. */
  readonly metaCalls: { requestId: string; principal: string }[] = [];
  /** RegisterNode calls received (the catalog's nodes are set by the test). */
  readonly registrations: RegisteredNode[] = [];
  /** GetCatalog calls served. */
  catalogReads = 0;
  readonly nodes: StorageNode[];
  /** Nodes whose GetStorageStatus fails. */
  readonly downNodes = new Set<string>();
  /** The state a node reports for every replica it hosts (default: not reported). */
  readonly replicaStates = new Map<string, ReplicaState>();
  /** node -> partition -> applied offset (default: the commit offset). */
  readonly appliedCap = new Map<string, Map<number, bigint>>();
  /** Fail the next Append with this code (once). */
  failNextAppend: Code | undefined;
  catalog: Catalog;
  #lastTs = 0n;
  readonly #journalChanged = new Notifier();
  readonly #catalogChanged = new Notifier();

  constructor(options: FakeOptions = {}) {
    this.partitions = options.partitions ?? 2;
    this.heartbeatMs = options.heartbeatMs ?? 20;
    this.nodes = Array.from({ length: options.storageNodes ?? 2 }, (_, i) => ({ id: `storage-${i + 1}`, address: `http://storage-${i + 1}.test:7300` }));
    this.logs = Array.from({ length: this.partitions }, () => []);
    for (let p = 0; p < this.partitions; p++) this.#push(p, { type: EntryType.EPOCH_START });
    this.catalog = create(CatalogSchema, {
      revision: 1n,
      partitions: this.partitions,
      journalAddress: "http://journal.test:7100",
      nodes: this.nodes.map((n) => create(RegisteredNodeSchema, { id: n.id, roles: [NodeRole.STORAGE], address: n.address, alive: true })),
    });
  }

  // ---- journal state -------------------------------------------------------------------

  nextTs(after = 0n): bigint {
    const wall = encode(Date.now(), 0);
    let ts = this.#lastTs + 1n;
    if (wall > ts) ts = wall;
    if (after >= ts) ts = after + 1n;
    this.#lastTs = ts;
    return ts;
  }

  #push(partition: number, e: { type: EntryType; causal?: bigint; producerId?: bigint; seq?: bigint; payload?: JournalEntry["payload"] }): JournalEntry {
    const log = this.logs[partition]!;
    const entry = create(JournalEntrySchema, {
      partition,
      offset: BigInt(log.length + 1),
      epoch: 1,
      ts: this.nextTs(e.causal ?? 0n),
      type: e.type,
      producerId: e.producerId ?? 0n,
      seq: e.seq ?? 0n,
      payload: e.payload ?? { case: undefined },
    });
    log.push(entry);
    this.#journalChanged.notify();
    return entry;
  }

  /** Appends a TICK to every partition (or one). */
  tick(partition?: number): void {
    for (let p = 0; p < this.partitions; p++) if (partition === undefined || p === partition) this.#push(p, { type: EntryType.TICK });
  }

  /** Appends a DATA entry directly (as another gateway would have). */
  appendData(partition: number, payload: Parameters<typeof create<typeof DataPayloadSchema>>[1]): JournalEntry {
    return this.#push(partition, { type: EntryType.DATA, payload: { case: "data", value: create(DataPayloadSchema, payload) } });
  }

  commitOffset(p: number): bigint {
    return BigInt(this.logs[p]!.length);
  }

  closedTs(p: number): bigint {
    return this.logs[p]!.at(-1)?.ts ?? 0n;
  }

  dataEntries(): JournalEntry[] {
    return this.allEntries().filter((e) => e.type === EntryType.DATA);
  }

  /** Every entry, in global (ts, partition, offset) order. */
  allEntries(): JournalEntry[] {
    return this.logs.flat().sort((a, b) => (a.ts !== b.ts ? (a.ts < b.ts ? -1 : 1) : a.partition - b.partition || Number(a.offset - b.offset)));
  }

  /** The live records of a collection, as storage would hold them after applying everything. */
  records(collection: string): Map<string, RecordState> {
    const out = new Map<string, RecordState>();
    for (const e of this.dataEntries()) {
      if (e.payload.case !== "data" || e.payload.value.collection !== collection) continue;
      for (const u of e.payload.value.upserts) out.set(u.id, { id: u.id, vector: u.vectorF32, metadataJson: u.metadataJson, ts: e.ts, offset: e.offset });
      for (const id of e.payload.value.deleteIds) out.delete(id);
    }
    return out;
  }

  // ---- catalog state -------------------------------------------------------------------

  collectionEntry(name: string): CatalogCollection | undefined {
    return this.catalog.collections.find((c) => c.collection?.name === name);
  }

  #setCatalog(collections: CatalogCollection[], nodes: RegisteredNode[] = this.catalog.nodes): bigint {
    const revision = this.catalog.revision + 1n;
    this.catalog = create(CatalogSchema, { ...this.catalog, revision, collections, nodes });
    this.#catalogChanged.notify();
    return revision;
  }

  /** Sets the catalog's journal partition map, as the meta-manager's partition map controller would. */
  setJournalPartitions(partitions: { partition: number; leader: string; epoch: bigint; replicas: string[]; leaderAddress: string }[]): bigint {
    this.catalog = create(CatalogSchema, { ...this.catalog, revision: this.catalog.revision + 1n, journalPartitions: partitions.map((p) => create(JournalPartitionSchema, p)) });
    this.#catalogChanged.notify();
    return this.catalog.revision;
  }

  /** Registers (or replaces) a node in the catalog, as a lease registration or expiry would. */
  setNode(node: { id: string; address: string; roles: NodeRole[]; alive: boolean }): bigint {
    const nodes = [...this.catalog.nodes.filter((n) => n.id !== node.id), create(RegisteredNodeSchema, node)];
    return this.#setCatalog(this.catalog.collections, nodes);
  }

  createCollection(spec: Collection, who: { requestId?: string; principal?: string } = {}): { entry: CatalogCollection; revision: bigint } {
    if (this.collectionEntry(spec.name) !== undefined) throw new ConnectError(`collection "${spec.name}" already exists`, Code.AlreadyExists);
    const uid = randomUUID();
    const placements = Array.from({ length: spec.shards }, (_, shard) =>
      create(ShardPlacementSchema, {
        shard,
        partition: shard % this.partitions,
        replicas: Array.from({ length: Math.min(spec.replicationFactor, this.nodes.length) }, (_, r) => this.nodes[(shard + r) % this.nodes.length]!.id),
      }),
    );
    let createdTs = 0n;
    for (const p of [...new Set(placements.map((x) => x.partition))]) {
      const e = this.#push(p, {
        type: EntryType.DDL,
        payload: {
          case: "ddl",
          value: create(DdlPayloadSchema, {
            collection: spec.name,
            op: DdlOp.CREATE_COLLECTION,
            requestId: who.requestId ?? "",
            principal: who.principal ?? "",
            shards: placements.filter((x) => x.partition === p).map((x) => x.shard),
            uid,
          }),
        },
      });
      if (e.ts > createdTs) createdTs = e.ts;
    }
    const entry = create(CatalogCollectionSchema, {
      collection: { ...spec, createdTs },
      uid,
      shards: placements,
      createdRevision: this.catalog.revision + 1n,
    });
    const revision = this.#setCatalog([...this.catalog.collections, entry]);
    return { entry, revision };
  }

  dropCollection(name: string, who: { requestId?: string; principal?: string } = {}): { entry: CatalogCollection; revision: bigint } {
    const entry = this.collectionEntry(name);
    if (entry === undefined) throw new ConnectError(`collection "${name}" not found`, Code.NotFound);
    for (const p of [...new Set(entry.shards.map((x) => x.partition))]) {
      this.#push(p, {
        type: EntryType.DDL,
        payload: {
          case: "ddl",
          value: create(DdlPayloadSchema, {
            collection: name,
            op: DdlOp.DROP_COLLECTION,
            requestId: who.requestId ?? "",
            principal: who.principal ?? "",
            uid: entry.uid,
          }),
        },
      });
    }
    const revision = this.#setCatalog(this.catalog.collections.filter((c) => c !== entry));
    return { entry, revision };
  }

  // ---- clients ------------------------------------------------------------------------

  metaClient(): Client<typeof MetaService> {
    return createClient(
      MetaService,
      createRouterTransport(({ service }) => {
        service(MetaService, {
          createCollection: (req, ctx) => {
            this.metaHeaders.push(ctx.requestHeader);
            this.metaCalls.push({ requestId: req.requestId, principal: req.principal });
            if (req.collection === undefined) throw new ConnectError("collection required", Code.InvalidArgument);
            const { entry, revision } = this.createCollection(req.collection, req);
            return { collection: entry, revision };
          },
          dropCollection: (req, ctx) => {
            this.metaHeaders.push(ctx.requestHeader);
            this.metaCalls.push({ requestId: req.requestId, principal: req.principal });
            const { entry, revision } = this.dropCollection(req.name, req);
            return { collection: entry, revision };
          },
          getCatalog: () => {
            this.catalogReads++;
            return { catalog: this.catalog };
          },
          watchCatalog: (req, ctx) => this.#watchCatalog(req.afterRevision, ctx.signal),
          registerNode: (req) => {
            if (req.node !== undefined) this.registrations.push(req.node);
            return { leaseId: "1" };
          },
          heartbeat: () => ({ alive: true }),
        });
      }),
    );
  }

  async *#watchCatalog(afterRevision: bigint, signal: AbortSignal): AsyncGenerator<{ catalog: Catalog }> {
    let sent = afterRevision;
    for (;;) {
      if (this.catalog.revision > sent) {
        sent = this.catalog.revision;
        yield { catalog: this.catalog };
      }
      await this.#catalogChanged.wait(1000, signal);
    }
  }

  journalClient(): Client<typeof JournalService> {
    return createClient(
      JournalService,
      createRouterTransport(({ service }) => {
        service(JournalService, {
          append: (req) => this.#append(req),
          barrier: () => {
            this.tick();
            return { positions: this.logs.map((_, p) => ({ partition: p, offset: this.commitOffset(p), ts: this.closedTs(p) })) };
          },
          subscribe: (req, ctx) => this.#subscribe(req.partition, req.fromOffset, req.skipTicks, ctx.signal),
          readEntries: (req) => ({
            entries: req.refs.map((r) => {
              const e = this.logs[r.partition]?.[Number(r.offset) - 1];
              if (e === undefined) throw new ConnectError(`no entry at ${r.partition}/${r.offset}`, Code.NotFound);
              return e;
            }),
          }),
          getPartitions: () => ({
            nodeId: "journal-0",
            partitions: this.logs.map((_, p) => ({
              partition: p,
              epoch: 1,
              commitOffset: this.commitOffset(p),
              closedTs: this.closedTs(p),
              firstOffset: 1n,
              segments: 1,
              auditIndexedOffset: this.commitOffset(p),
              serving: true,
            })),
          }),
          getRecordHistory: (req) => ({
            versions: this.dataEntries().flatMap((e) => {
              if (e.payload.case !== "data" || e.payload.value.collection !== req.collection) return [];
              const d = e.payload.value;
              const u = d.upserts.find((x) => x.id === req.id);
              const deleted = d.deleteIds.includes(req.id);
              if (u === undefined && !deleted) return [];
              return [
                create(JournalRecordVersionSchema, {
                  ts: e.ts,
                  partition: e.partition,
                  offset: e.offset,
                  op: u !== undefined ? RecordOp.UPSERT : RecordOp.DELETE,
                  requestId: d.requestId,
                  principal: d.principal,
                  vectorF32: u?.vectorF32 ?? new Uint8Array(0),
                  metadataJson: u?.metadataJson ?? "",
                }),
              ];
            }),
          }),
          getRequestEntries: (req) => ({
            entries: this.allEntries().filter((e) => (e.payload.case === "data" || e.payload.case === "ddl") && e.payload.value.requestId === req.requestId),
          }),
          listEntries: (req) => {
            const limit = req.limit === 0 ? 100 : req.limit;
            const after = req.pageToken === "" ? undefined : req.pageToken.split("/").map((x) => BigInt(x));
            const rows = this.allEntries().filter((e) => {
              if (e.payload.case !== "data" && e.payload.case !== "ddl") return false;
              const v = e.payload.value;
              if (req.collection !== "" && v.collection !== req.collection) return false;
              if (req.principal !== "" && v.principal !== req.principal) return false;
              if (e.ts < req.fromTs || (req.toTs !== 0n && e.ts > req.toTs)) return false;
              if (after !== undefined) {
                const [ts, p, o] = after as [bigint, bigint, bigint];
                if (e.ts < ts || (e.ts === ts && (BigInt(e.partition) < p || (BigInt(e.partition) === p && e.offset <= o)))) return false;
              }
              return true;
            });
            const page = rows.slice(0, limit);
            const last = page.at(-1);
            return {
              operations: page.map((e) => {
                const v = e.payload.value as DataPayload | { collection: string; requestId: string; principal: string };
                return create(JournalOperationSchema, {
                  ts: e.ts,
                  partition: e.partition,
                  offset: e.offset,
                  type: e.type,
                  collection: v.collection,
                  requestId: v.requestId,
                  principal: v.principal,
                  upserts: "upserts" in v ? v.upserts.length : 0,
                  deletes: "deleteIds" in v ? v.deleteIds.length : 0,
                });
              }),
              nextPageToken: rows.length > limit && last !== undefined ? `${last.ts}/${last.partition}/${last.offset}` : "",
            };
          },
        });
      }),
    );
  }

  #append(req: AppendRequest): { partition: number; epoch: number; results: { offset: bigint; ts: bigint }[]; deduplicated: boolean } {
    this.appends.push(req);
    if (this.failNextAppend !== undefined) {
      const code = this.failNextAppend;
      this.failNextAppend = undefined;
      throw new ConnectError("injected failure", code);
    }
    if (req.partition >= this.partitions) throw new ConnectError(`partition ${req.partition} does not exist`, Code.NotFound);
    const ahead = Number(req.causalTs >> 16n) - Date.now();
    if (ahead > 500) throw new ConnectError(`causal_ts is ${ahead} ms ahead of this journal's clock (max 500)`, Code.InvalidArgument);
    const key = `${req.partition}/${req.producerId}/${req.producerEpoch}`;
    if (req.producerId !== 0n) {
      const run = this.producers.get(key);
      if (run !== undefined) {
        const last = req.firstSeq + BigInt(req.entries.length) - 1n;
        const runLast = run.firstSeq + BigInt(run.count) - 1n;
        if (req.firstSeq >= run.firstSeq && last <= runLast) {
          const from = Number(req.firstSeq - run.firstSeq);
          return { partition: req.partition, epoch: 1, results: run.results.slice(from, from + req.entries.length), deduplicated: true };
        }
        if (!(last < run.firstSeq || req.firstSeq > runLast)) {
          throw new ConnectError(`producer ${req.producerId}: seqs overlap an earlier batch without matching it`, Code.InvalidArgument);
        }
      }
    }
    const results = req.entries.map((e, i) => {
      const entry = this.#push(req.partition, {
        type: e.payload.case === "ddl" ? EntryType.DDL : EntryType.DATA,
        causal: req.causalTs,
        producerId: req.producerId,
        seq: req.firstSeq + BigInt(i),
        payload:
          e.payload.case === "data"
            ? { case: "data", value: e.payload.value }
            : e.payload.case === "ddl"
              ? { case: "ddl", value: e.payload.value }
              : { case: undefined },
      });
      return { offset: entry.offset, ts: entry.ts };
    });
    if (req.producerId !== 0n) this.producers.set(key, { firstSeq: req.firstSeq, count: req.entries.length, results });
    return { partition: req.partition, epoch: 1, results, deduplicated: false };
  }

  async *#subscribe(
    partition: number,
    fromOffset: bigint,
    skipTicks: boolean,
    signal: AbortSignal,
  ): AsyncGenerator<{
    entries: JournalEntry[];
    commitOffset: bigint;
    closedTs: bigint;
    nextOffset: bigint;
  }> {
    const log = this.logs[partition];
    if (log === undefined) throw new ConnectError(`partition ${partition} does not exist`, Code.NotFound);
    let next = fromOffset;
    for (;;) {
      if (next <= BigInt(log.length)) {
        const batch = log.slice(Number(next) - 1, Number(next) - 1 + 3);
        next += BigInt(batch.length);
        yield {
          entries: skipTicks ? batch.filter((e) => e.type !== EntryType.TICK) : batch,
          commitOffset: this.commitOffset(partition),
          closedTs: this.closedTs(partition),
          nextOffset: next,
        };
        continue;
      }
      await this.#journalChanged.wait(this.heartbeatMs, signal);
      if (next > BigInt(log.length)) {
        yield { entries: [], commitOffset: this.commitOffset(partition), closedTs: this.closedTs(partition), nextOffset: next };
      }
    }
  }

  /** The read timestamp the fake query processor resolves a consistency to. */
  #readTs(c: ReadConsistency | undefined): bigint {
    switch (c?.level) {
      case Consistency.EVENTUAL:
        return 0n;
      case Consistency.SESSION:
        return c.sessionToken === "" ? 0n : BigInt(c.sessionToken);
      default: {
        let max = 0n;
        for (let p = 0; p < this.partitions; p++) if (this.closedTs(p) > max) max = this.closedTs(p);
        return max;
      }
    }
  }

  queryClient(): Client<typeof QueryService> {
    const stored = (r: RecordState, vectors = true, metadata = true): StoredRecord =>
      create(StoredRecordSchema, {
        id: r.id,
        vectorF32: vectors ? r.vector : new Uint8Array(0),
        metadataJson: metadata ? r.metadataJson : "",
        ts: r.ts,
        offset: r.offset,
      });
    const matches = (filterJson: string, metadataJson: string): boolean => {
      if (filterJson === "") return true;
      const f = JSON.parse(filterJson) as JsonObject;
      const m = JSON.parse(metadataJson === "" ? "{}" : metadataJson) as JsonObject;
      return Object.entries(f).every(([k, v]) => JSON.stringify(m[k]) === JSON.stringify(v));
    };
    return createClient(
      QueryService,
      createRouterTransport(({ service }) => {
        service(QueryService, {
          search: (req, ctx) => {
            this.searches.push(req);
            this.searchDeadlines.push(ctx.timeoutMs());
            const entry = this.collectionEntry(req.collection);
            if (entry === undefined) throw new ConnectError("no such collection", Code.NotFound);
            const q = new Float32Array(req.vectorF32.slice().buffer);
            const metric = entry.collection?.metric ?? Metric.L2;
            const hits: ShardHit[] = [...this.records(req.collection).values()]
              .filter((r) => matches(req.filterJson, r.metadataJson))
              .map((r) => {
                const v = new Float32Array(r.vector.slice().buffer);
                let dot = 0;
                let l2 = 0;
                let nq = 0;
                let nv = 0;
                for (let i = 0; i < q.length; i++) {
                  const a = q[i]!;
                  const b = v[i]!;
                  dot += a * b;
                  l2 += (a - b) * (a - b);
                  nq += a * a;
                  nv += b * b;
                }
                const score = metric === Metric.L2 ? l2 : metric === Metric.IP ? dot : dot / Math.sqrt(nq * nv);
                return {
                  $typeName: "vecraft.v1.ShardHit" as const,
                  id: r.id,
                  score,
                  vectorF32: req.includeVectors ? r.vector : new Uint8Array(0),
                  metadataJson: req.includeMetadata ? r.metadataJson : "",
                };
              })
              .sort((a, b) => (metric === Metric.L2 ? a.score - b.score : b.score - a.score) || (a.id < b.id ? -1 : 1))
              .slice(0, req.k);
            return { hits, read: { level: req.consistency?.level ?? Consistency.BOUNDED, readTs: this.#readTs(req.consistency) } };
          },
          get: (req) => {
            this.gets.push(req);
            const recs = this.records(req.collection);
            return {
              records: req.ids.flatMap((id) => {
                const r = recs.get(id);
                return r === undefined ? [] : [stored(r)];
              }),
              read: { level: req.consistency?.level ?? Consistency.BOUNDED, readTs: this.#readTs(req.consistency) },
            };
          },
          query: (req) => {
            this.queries.push(req);
            const all = [...this.records(req.collection).values()]
              .filter((r) => r.id > req.afterId && matches(req.filterJson, r.metadataJson))
              .sort((a, b) => (a.id < b.id ? -1 : 1));
            return {
              records: all.slice(0, req.limit).map((r) => stored(r)),
              hasMore: all.length > req.limit,
              read: { level: req.consistency?.level ?? Consistency.BOUNDED, readTs: this.#readTs(req.consistency) },
            };
          },
        });
      }),
    );
  }

  /** A StorageService client per node address, reporting every replica the catalog places on the node. */
  storageFactory(): (address: string) => Client<typeof StorageService> {
    return (address) => {
      const node = this.nodes.find((n) => n.address === address);
      if (node === undefined) throw new Error(`unknown storage address ${address}`);
      return createClient(
        StorageService,
        createRouterTransport(({ service }) => {
          service(StorageService, {
            getStorageStatus: () => {
              if (this.downNodes.has(node.id)) throw new ConnectError("node down", Code.Unavailable);
              const applied = (partition: number): { partition: number; offset: bigint; ts: bigint } => {
                const cap = this.appliedCap.get(node.id)?.get(partition);
                const offset = cap !== undefined && cap < this.commitOffset(partition) ? cap : this.commitOffset(partition);
                return { partition, offset, ts: this.logs[partition]?.[Number(offset) - 1]?.ts ?? 0n };
              };
              const shards = this.catalog.collections.flatMap((c) =>
                c.shards
                  .filter((p) => p.replicas.includes(node.id))
                  .map((p) => {
                    const pos = applied(p.partition);
                    let records = 0n;
                    for (const e of this.dataEntries()) {
                      if (
                        e.payload.case === "data" &&
                        e.payload.value.collection === c.collection?.name &&
                        e.payload.value.shard === p.shard &&
                        e.partition === p.partition &&
                        e.offset <= pos.offset
                      ) {
                        records += BigInt(e.payload.value.upserts.length);
                      }
                    }
                    const state = this.replicaStates.get(node.id) ?? ReplicaState.UNSPECIFIED;
                    return { collection: c.collection?.name ?? "", shard: p.shard, applied: pos, records, indexed: records, checkpointOffset: 0n, state };
                  }),
              );
              const partitions = [...new Set(shards.map((s) => s.applied.partition))].map((p) => applied(p));
              return { node: node.id, shards, partitions };
            },
          });
        }),
      );
    };
  }
}
