// The catalog: collections, their shard placement, and the node registry, kept in a
// MetaStore. Every catalog change is a transaction that compares the record it changes
// and the catalog version key (so each change is made against the latest catalog) and
// rewrites the version key; a lost compare is retried with a fresh read.
//
// A collection's life (README "DDL flow"):
//
//   create: CAS absent -> CREATING (uid, placement)  -> journal a CREATE entry in every
//           partition hosting one of its shards -> CAS CREATING -> READY (created_ts)
//   drop:   CAS READY -> DROPPING -> journal a DROP entry in those partitions -> CAS delete
//
// The journal orders DDL against writes, and storage nodes create and drop replicas when
// they apply the entries. A crash between the steps leaves the record CREATING or
// DROPPING; a retry of the request, the startup pass and the periodic reconciler resume
// it. Appends are idempotent (producer id from uid + op, seq 1), so resuming never writes
// a second entry while the journal remembers the producer.
import { clone, create, equals, toBinary } from "@bufbuild/protobuf";
import { formatTimestamp } from "@vecraft/hlc";
import {
  AbortedError,
  AlreadyExistsError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
  raceSignal,
  abortableSleep,
  backoffDelays,
  isRetryable,
  retry,
  type Logger,
} from "@vecraft/common";
import {
  CatalogCollectionSchema,
  CatalogSchema,
  CollectionSchema,
  CollectionState,
  DdlOp,
  DdlPayloadSchema,
  JournalPartitionSchema,
  NodeRole,
  RegisteredNodeSchema,
  type Catalog as CatalogMessage,
  type CatalogCollection,
  type Collection,
} from "@vecraft/rpc";
import { CatalogFeed } from "./catalog-feed.js";
import { ddlProducerId, type DdlJournal } from "./ddl.js";
import { placeShards, shardsByPartition } from "./placement.js";
import {
  EMPTY,
  commitCatalogChange,
  catalogKeys,
  decodeCluster,
  decodeCollection,
  encodeCluster,
  encodeCollection,
  encodeNode,
  readCatalogSnapshot,
  storageLoad,
  type CatalogKeys,
  type CatalogSnapshot,
  type CollectionRecord,
  type DdlOrigin,
  type NodeRecord,
} from "./records.js";
import type { LeaseId, MetaStore } from "./store/meta-store.js";

/** Most shards a collection may have. */
export const MAX_SHARDS = 1024;
/** Most replicas a shard may have. */
export const MAX_REPLICATION_FACTOR = 16;
/** Shortest and longest node lease a RegisterNode may ask for. */
export const MIN_NODE_LEASE_TTL_MS = 100;
export const MAX_NODE_LEASE_TTL_MS = 10 * 60_000;

const COLLECTION_NAME = /^[a-zA-Z][a-zA-Z0-9_-]{0,63}$/;
const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const MAX_ADDRESS_LENGTH = 2048;
const MAX_LEASE_ID_LENGTH = 64;
const KNOWN_ROLES: ReadonlySet<number> = new Set(Object.values(NodeRole).filter((v): v is NodeRole => typeof v === "number" && v !== NodeRole.UNSPECIFIED));

/** Hooks for metrics; all optional. */
export interface CatalogObserver {
  casConflict?(): void;
  ddlAppend?(op: "create" | "drop", outcome: "appended" | "deduplicated" | "failed"): void;
  snapshot?(catalog: CatalogMessage): void;
}

export interface CatalogOptions {
  readonly store: MetaStore;
  readonly journal: DdlJournal;
  /** Journal partitions; recorded in the store at first start and checked afterwards. */
  readonly partitions: number;
  /** The journal's base URL, published in the catalog. */
  readonly journalAddress: string;
  readonly logger: Logger;
  /** Root of the catalog's keys (default "/vecraft/meta/"). */
  readonly keyRoot?: string;
  /** Lease of a RegisterNode that asks for ttl_ms 0. */
  readonly defaultNodeLeaseTtlMs: number;
  readonly maxCollections: number;
  readonly maxNodes: number;
  readonly maxWatchStreams: number;
  /** Pause after a change before re-reading the catalog for watchers (coalescing). */
  readonly watchCoalesceMs: number;
  /** Time budget for journaling one DDL operation, retries included. */
  readonly ddlRetryBudgetMs: number;
  /** Pause between passes that resume CREATING/DROPPING collections; 0: only at startup. */
  readonly reconcileIntervalMs: number;
  /** Compare-and-swap attempts before a change fails with ABORTED (default 32). */
  readonly casMaxAttempts?: number;
  readonly observer?: CatalogObserver;
  /** New collection uids; default crypto.randomUUID. */
  readonly newUid?: () => string;
  /** Wall clock for registration times; default Date.now. */
  readonly now?: () => number;
}

/** The result of a create or a drop. */
export interface CollectionChange {
  readonly collection: CatalogCollection;
  /** The catalog revision after the change. */
  readonly revision: number;
}

export interface NodeInput {
  readonly id: string;
  readonly roles: readonly NodeRole[];
  readonly address: string;
}

const RETRY = Symbol("retry");

const STATE: Readonly<Record<CollectionRecord["state"], CollectionState>> = {
  creating: CollectionState.CREATING,
  ready: CollectionState.READY,
  dropping: CollectionState.DROPPING,
};

function quote(name: string): string {
  return JSON.stringify(name);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Checks what the catalog relies on and returns the spec as stored (created_ts 0, no stats). */
export function normalizeSpec(c: Collection): Collection {
  if (!COLLECTION_NAME.test(c.name)) {
    throw new InvalidArgumentError(`collection.name: ${quote(c.name)} does not match [a-zA-Z][a-zA-Z0-9_-]{0,63}`);
  }
  if (c.dimension < 1) throw new InvalidArgumentError("collection.dimension: must be at least 1");
  if (c.shards < 1 || c.shards > MAX_SHARDS) {
    throw new InvalidArgumentError(`collection.shards: ${c.shards} is outside 1..${MAX_SHARDS} (defaults are filled in by the gateway)`);
  }
  if (c.replicationFactor < 1 || c.replicationFactor > MAX_REPLICATION_FACTOR) {
    throw new InvalidArgumentError(`collection.replication_factor: ${c.replicationFactor} is outside 1..${MAX_REPLICATION_FACTOR}`);
  }
  const spec = clone(CollectionSchema, c);
  spec.createdTs = 0n;
  delete spec.stats;
  return spec;
}

function validateNode(n: NodeInput): NodeInput {
  if (!NODE_ID.test(n.id)) throw new InvalidArgumentError(`node.id: ${quote(n.id)} does not match [A-Za-z0-9][A-Za-z0-9._:-]{0,127}`);
  if (n.roles.length === 0) throw new InvalidArgumentError("node.roles: a node needs at least one role");
  n.roles.forEach((r, i) => {
    if (!KNOWN_ROLES.has(r)) throw new InvalidArgumentError(`node.roles[${i}]: ${r} is not a known role`);
  });
  if (n.address === "" || n.address.length > MAX_ADDRESS_LENGTH) {
    throw new InvalidArgumentError(`node.address: must be a URL of 1..${MAX_ADDRESS_LENGTH} characters`);
  }
  let url: URL;
  try {
    url = new URL(n.address);
  } catch {
    // The parser's message adds nothing; the field and the value say what is wrong.
    throw new InvalidArgumentError(`node.address: ${quote(n.address)} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new InvalidArgumentError(`node.address: ${quote(n.address)} must be an http or https URL`);
  }
  return { id: n.id, roles: [...new Set(n.roles)].sort((a, b) => a - b), address: n.address };
}

export class Catalog {
  readonly keys: CatalogKeys;
  private readonly feed: CatalogFeed;
  private readonly stop = new AbortController();
  /** In-flight DDL journaling per (uid, op), shared by concurrent resumers; at most one per collection. */
  private readonly flights = new Map<string, Promise<bigint>>();
  private reconciling: Promise<void> | undefined;
  /** True while GetCatalog/WatchCatalog answer from the cache (logged once per outage). */
  private servingCached = false;
  private readonly casMaxAttempts: number;
  private readonly newUid: () => string;
  private readonly now: () => number;

  private constructor(private readonly opts: CatalogOptions) {
    this.keys = catalogKeys(opts.keyRoot);
    this.casMaxAttempts = opts.casMaxAttempts ?? 32;
    this.newUid = opts.newUid ?? ((): string => crypto.randomUUID());
    this.now = opts.now ?? Date.now;
    this.feed = new CatalogFeed({
      store: opts.store,
      prefix: this.keys.root,
      read: (signal) => this.readCatalog(signal),
      cached: (e, signal) => this.cachedCatalog(e, signal),
      coalesceMs: opts.watchCoalesceMs,
      maxStreams: opts.maxWatchStreams,
      logger: opts.logger,
      ...(opts.observer?.snapshot ? { onSnapshot: (c: CatalogMessage) => opts.observer?.snapshot?.(c) } : {}),
    });
  }

  /**
   * Opens the catalog: checks (or records) the partition count, starts the watch feed
   * and the reconciler, whose first pass resumes collections left CREATING or DROPPING.
   */
  static async open(opts: CatalogOptions, signal?: AbortSignal): Promise<Catalog> {
    if (!Number.isInteger(opts.partitions) || opts.partitions < 1) throw new RangeError(`partitions must be a positive integer, got ${opts.partitions}`);
    const c = new Catalog(opts);
    await c.checkCluster(signal);
    c.feed.start();
    c.reconciling = c.reconcileLoop();
    return c;
  }

  /** True once the catalog has been read (readiness). */
  get ready(): boolean {
    return this.feed.current !== undefined;
  }

  /** The latest catalog the watch feed has seen (metrics read it). */
  get latest(): CatalogMessage | undefined {
    return this.feed.current;
  }

  get watchStreams(): number {
    return this.feed.activeStreams;
  }

  // ---------------------------------------------------------------------------------
  // Collections

  /**
   * Creates a collection and returns once its DDL entries are durable in the journal.
   * A create of a collection still CREATING with the same spec resumes it.
   */
  async createCollection(input: Collection, origin: DdlOrigin, signal: AbortSignal): Promise<CollectionChange> {
    const spec = normalizeSpec(input);
    const name = spec.name;
    const key = this.keys.collection(name);
    const placed = await this.cas(signal, `create collection ${quote(name)}`, async () => {
      const snap = await this.snapshot(signal);
      const existing = snap.collections.get(name);
      if (existing !== undefined) {
        switch (existing.rec.state) {
          case "ready":
            throw new AlreadyExistsError(`collection ${quote(name)} already exists`);
          case "creating":
            if (equals(CollectionSchema, existing.rec.spec, spec)) return existing;
            throw new AlreadyExistsError(`collection ${quote(name)} is being created with a different spec`);
          case "dropping":
            // The old incarnation must be gone before the name is reused.
            await this.finishDrop(existing.rec, existing.createRevision, signal);
            return RETRY;
        }
      }
      if (snap.collections.size >= this.opts.maxCollections) {
        throw new ResourceExhaustedError(`the catalog holds ${snap.collections.size} collections, the maximum (max-collections); drop one first`);
      }
      const load = storageLoad(snap);
      const shards = placeShards({ name, shards: spec.shards, replicationFactor: spec.replicationFactor, partitions: this.opts.partitions, load });
      const rec: CollectionRecord = { state: "creating", uid: this.newUid(), spec, shards, createdTs: 0n, create: origin };
      const res = await commitCatalogChange(
        this.opts.store,
        this.keys,
        snap.versionRevision,
        {
          compares: [{ key, modRevision: 0 }],
          puts: [{ key, value: encodeCollection(rec) }],
        },
        { signal },
      );
      if (!res.committed) {
        this.opts.observer?.casConflict?.();
        return RETRY;
      }
      this.opts.logger.info("collection placed", {
        collection: name,
        uid: rec.uid,
        shards: spec.shards,
        replicationFactor: spec.replicationFactor,
        revision: res.revision,
      });
      return { rec, createRevision: res.revision, modRevision: res.revision };
    });
    return this.finishCreate(placed.rec, placed.createRevision, signal);
  }

  /** Drops a collection and returns once its DDL entries are durable. NOT_FOUND if it does not exist. */
  async dropCollection(name: string, origin: DdlOrigin, signal: AbortSignal): Promise<CollectionChange> {
    if (name === "") throw new InvalidArgumentError("name: required");
    if (!COLLECTION_NAME.test(name)) throw new NotFoundError(`collection ${quote(name)} does not exist`);
    const key = this.keys.collection(name);
    const dropping = await this.cas(signal, `drop collection ${quote(name)}`, async () => {
      const [kv, version] = await Promise.all([this.opts.store.get(key, { signal }), this.opts.store.get(this.keys.version, { signal })]);
      if (kv === undefined) throw new NotFoundError(`collection ${quote(name)} does not exist`);
      const cur = decodeCollection(kv.key, kv.value);
      if (cur.state === "dropping") return { rec: cur, createRevision: kv.createRevision };
      if (cur.state === "creating") {
        // Finish the create first, so that no CREATE entry can land after the DROP.
        await this.finishCreate(cur, kv.createRevision, signal);
        return RETRY;
      }
      const rec: CollectionRecord = { ...cur, state: "dropping", drop: origin };
      const res = await commitCatalogChange(
        this.opts.store,
        this.keys,
        version?.modRevision ?? 0,
        {
          compares: [{ key, modRevision: kv.modRevision }],
          puts: [{ key, value: encodeCollection(rec) }],
        },
        { signal },
      );
      if (!res.committed) {
        this.opts.observer?.casConflict?.();
        return RETRY;
      }
      this.opts.logger.info("collection dropping", { collection: name, uid: rec.uid, revision: res.revision });
      return { rec, createRevision: kv.createRevision };
    });
    return this.finishDrop(dropping.rec, dropping.createRevision, signal);
  }

  /**
   * The whole catalog, read at one revision. When the store is unreachable, the last
   * catalog read is served instead (services that start or re-read during an etcd outage
   * keep working on the existing topology); UNAVAILABLE only if none was read yet.
   */
  async getCatalog(signal: AbortSignal): Promise<CatalogMessage> {
    try {
      return await this.readCatalog(signal);
    } catch (e) {
      const cached = this.cachedCatalog(e, signal);
      if (cached === undefined) throw e;
      return cached;
    }
  }

  /** Calls `listener` with every new catalog snapshot the feed reads (the failover controller follows changes this way). */
  onSnapshot(listener: (catalog: CatalogMessage) => void): () => void {
    return this.feed.subscribe(listener);
  }

  /** The whole catalog, read from the store now (no fallback). */
  private async readCatalog(signal: AbortSignal): Promise<CatalogMessage> {
    const c = this.toCatalog(await this.snapshot(signal));
    if (this.servingCached) {
      this.servingCached = false;
      this.opts.logger.info("the metadata store answers again; serving the live catalog", { revision: c.revision });
    }
    return c;
  }

  /** The cached catalog if `e` says the store is unreachable (and the caller did not give up), else undefined. */
  private cachedCatalog(e: unknown, signal: AbortSignal): CatalogMessage | undefined {
    if (!(e instanceof UnavailableError) || signal.aborted || this.stop.signal.aborted) return undefined;
    const cached = this.feed.current;
    if (cached === undefined) return undefined;
    if (!this.servingCached) {
      this.servingCached = true;
      this.opts.logger.warn("the metadata store is unreachable; GetCatalog and WatchCatalog serve the last catalog read until it is back", {
        revision: cached.revision,
        err: e,
      });
    }
    return cached;
  }

  /** The catalog now if newer than `afterRevision`, then every newer revision (coalesced), as the consumer pulls. */
  watch(afterRevision: bigint, signal: AbortSignal): AsyncGenerator<CatalogMessage> {
    return this.feed.watch(afterRevision, signal);
  }

  /**
   * Resumes every collection left CREATING or DROPPING (by a crash or a failed append).
   * Failures are logged and counted in `remaining`, for the next pass.
   */
  async reconcile(signal: AbortSignal): Promise<{ completed: number; remaining: number }> {
    const snap = await this.snapshot(signal);
    let completed = 0;
    let remaining = 0;
    for (const [name, c] of snap.collections) {
      if (c.rec.state === "ready") continue;
      try {
        if (c.rec.state === "creating") await this.finishCreate(c.rec, c.createRevision, signal);
        else await this.finishDrop(c.rec, c.createRevision, signal);
        completed++;
        this.opts.logger.info("resumed an interrupted collection change", { collection: name, uid: c.rec.uid, state: c.rec.state });
      } catch (e) {
        if (signal.aborted) throw e;
        remaining++;
        this.opts.logger.warn("could not resume an interrupted collection change; will retry", {
          collection: name,
          uid: c.rec.uid,
          state: c.rec.state,
          err: e,
        });
      }
    }
    return { completed, remaining };
  }

  // ---------------------------------------------------------------------------------
  // Nodes

  /**
   * Registers (or re-registers) a node: its record, and an "alive" key bound to a new
   * lease. A previous registration's lease is revoked, so its holder's heartbeats fail.
   */
  async registerNode(input: NodeInput, ttlMs: number, signal: AbortSignal): Promise<{ leaseId: LeaseId; ttlMs: number }> {
    const node = validateNode(input);
    const ttl = ttlMs === 0 ? this.opts.defaultNodeLeaseTtlMs : ttlMs;
    if (!Number.isSafeInteger(ttl) || ttl < MIN_NODE_LEASE_TTL_MS || ttl > MAX_NODE_LEASE_TTL_MS) {
      throw new InvalidArgumentError(`ttl_ms: ${ttlMs} is outside ${MIN_NODE_LEASE_TTL_MS}..${MAX_NODE_LEASE_TTL_MS} (0 means the default)`);
    }
    const store = this.opts.store;
    const [existing, previous] = await Promise.all([store.get(this.keys.node(node.id), { signal }), store.get(this.keys.aliveNode(node.id), { signal })]);
    if (existing === undefined) {
      const all = await store.range(this.keys.nodes, { signal, limit: this.opts.maxNodes });
      if (all.kvs.length >= this.opts.maxNodes) {
        throw new ResourceExhaustedError(`${all.kvs.length} nodes are registered, the maximum (max-nodes)`);
      }
    }
    const lease = await store.grantLease(ttl, { signal });
    const record: NodeRecord = { ...node, registeredAtMs: this.now(), ttlMs: ttl };
    try {
      await store.txn(
        {
          puts: [
            { key: this.keys.node(node.id), value: encodeNode(record) },
            { key: this.keys.aliveNode(node.id), value: new TextEncoder().encode(lease), lease },
          ],
        },
        { signal },
      );
    } catch (e) {
      await store.revoke(lease).catch((re: unknown) => this.opts.logger.warn("could not revoke an unused lease; it expires by itself", { lease, err: re }));
      throw e;
    }
    if (previous?.lease !== undefined && previous.lease !== lease) {
      // Nothing else is attached to the old lease now; revoking it tells its holder (a
      // previous incarnation of the node) that it lost the registration.
      await store
        .revoke(previous.lease)
        .catch((e: unknown) => this.opts.logger.warn("could not revoke a replaced node lease; it expires by itself", { node: node.id, err: e }));
    }
    this.opts.logger.info("node registered", { node: node.id, roles: node.roles.map((r) => NodeRole[r]), address: node.address, lease, ttlMs: ttl });
    return { leaseId: lease, ttlMs: ttl };
  }

  /** Keeps a node's lease alive; false when it expired (the node must register again). */
  async heartbeat(leaseId: string, signal: AbortSignal): Promise<boolean> {
    if (leaseId === "" || leaseId.length > MAX_LEASE_ID_LENGTH) throw new InvalidArgumentError("lease_id: required, at most 64 characters");
    return this.opts.store.keepAlive(leaseId, { signal });
  }

  /** Stops the feed (ending watch streams) and the reconciler, and waits for in-flight DDL journaling. */
  async close(): Promise<void> {
    this.stop.abort(new UnavailableError("the meta-manager is shutting down"));
    await this.feed.close();
    await this.reconciling;
    await Promise.allSettled([...this.flights.values()]);
  }

  /** Ends watch streams (they get Unavailable) before the server drains: they never end by themselves. */
  endWatchStreams(): void {
    this.feed.endStreams();
  }

  // ---------------------------------------------------------------------------------
  // Internals

  /** Journals the create (idempotently) and moves the record CREATING -> READY. */
  private async finishCreate(rec: CollectionRecord, createRevision: number, signal: AbortSignal): Promise<CollectionChange> {
    const createdTs = await this.journalDdl(rec, DdlOp.CREATE_COLLECTION, signal);
    const key = this.keys.collection(rec.spec.name);
    return this.cas(signal, `finish creating collection ${quote(rec.spec.name)}`, async () => {
      const [kv, version] = await Promise.all([this.opts.store.get(key, { signal }), this.opts.store.get(this.keys.version, { signal })]);
      const cur = kv === undefined ? undefined : decodeCollection(kv.key, kv.value);
      if (kv === undefined || cur === undefined || cur.uid !== rec.uid) {
        // Dropped since (possibly recreated): the create itself did complete.
        return { collection: this.toProto({ ...rec, state: "ready", createdTs }, createRevision), revision: await this.opts.store.revision({ signal }) };
      }
      if (cur.state !== "creating") return { collection: this.toProto(cur, kv.createRevision), revision: kv.modRevision };
      const ready: CollectionRecord = { ...cur, state: "ready", createdTs };
      const res = await commitCatalogChange(
        this.opts.store,
        this.keys,
        version?.modRevision ?? 0,
        {
          compares: [{ key, modRevision: kv.modRevision }],
          puts: [{ key, value: encodeCollection(ready) }],
        },
        { signal },
      );
      if (!res.committed) {
        this.opts.observer?.casConflict?.();
        return RETRY;
      }
      this.opts.logger.info("collection ready", { collection: rec.spec.name, uid: rec.uid, createdTs: formatTimestamp(createdTs), revision: res.revision });
      return { collection: this.toProto(ready, kv.createRevision), revision: res.revision };
    });
  }

  /** Journals the drop (idempotently) and deletes the DROPPING record. */
  private async finishDrop(rec: CollectionRecord, createRevision: number, signal: AbortSignal): Promise<CollectionChange> {
    await this.journalDdl(rec, DdlOp.DROP_COLLECTION, signal);
    const key = this.keys.collection(rec.spec.name);
    const dropped = this.toProto(rec, createRevision);
    return this.cas(signal, `finish dropping collection ${quote(rec.spec.name)}`, async () => {
      const [kv, version] = await Promise.all([this.opts.store.get(key, { signal }), this.opts.store.get(this.keys.version, { signal })]);
      const cur = kv === undefined ? undefined : decodeCollection(kv.key, kv.value);
      if (kv === undefined || cur?.uid !== rec.uid) {
        return { collection: dropped, revision: await this.opts.store.revision({ signal }) };
      }
      const res = await commitCatalogChange(
        this.opts.store,
        this.keys,
        version?.modRevision ?? 0,
        {
          compares: [{ key, modRevision: kv.modRevision }],
          deletes: [key],
        },
        { signal },
      );
      if (!res.committed) {
        this.opts.observer?.casConflict?.();
        return RETRY;
      }
      this.opts.logger.info("collection dropped", { collection: rec.spec.name, uid: rec.uid, revision: res.revision });
      return { collection: dropped, revision: res.revision };
    });
  }

  /**
   * Appends the DDL entry of `op` to every partition hosting a shard of `rec`, and
   * returns the largest entry ts. One journaling per (uid, op) runs at a time; it runs
   * under the catalog's own lifetime (not the caller's), so a caller that gives up does
   * not stop it, and concurrent resumers wait for the same one.
   */
  private journalDdl(rec: CollectionRecord, op: DdlOp, signal: AbortSignal): Promise<bigint> {
    const k = `${rec.uid}/${op}`;
    let flight = this.flights.get(k);
    if (flight === undefined) {
      flight = this.appendEverywhere(rec, op).finally(() => this.flights.delete(k));
      // Callers get the error through raceSignal; this handler only keeps a flight whose
      // callers all gave up from becoming an unhandled rejection.
      flight.catch(() => undefined);
      this.flights.set(k, flight);
    }
    return raceSignal(flight, signal);
  }

  private async appendEverywhere(rec: CollectionRecord, op: DdlOp): Promise<bigint> {
    const name = rec.spec.name;
    const isCreate = op === DdlOp.CREATE_COLLECTION;
    const opName = isCreate ? "create" : "drop";
    const origin = isCreate ? rec.create : (rec.drop ?? rec.create);
    const producerId = ddlProducerId(rec.uid, op);
    const spec = isCreate ? toBinary(CollectionSchema, rec.spec) : EMPTY;
    const signal = this.stop.signal;
    const appends = [...shardsByPartition(rec.shards)].map(async ([partition, shards]) => {
      // A create names each shard's replicas: storage nodes host exactly those from the
      // entry on (later moves reach them through the catalog).
      const replicas = isCreate ? shards.map((shard) => ({ shard, nodes: [...(rec.shards.find((s) => s.shard === shard)?.replicas ?? [])] })) : [];
      const ddl = create(DdlPayloadSchema, {
        collection: name,
        op,
        spec,
        shards,
        replicas,
        uid: rec.uid,
        requestId: origin.requestId,
        principal: origin.principal,
      });
      try {
        const r = await retry((_attempt, sig) => this.opts.journal.appendDdl(partition, producerId, ddl, sig ?? signal), {
          signal,
          budgetMs: this.opts.ddlRetryBudgetMs,
          initialMs: 50,
          maxMs: 2_000,
          onRetry: ({ attempt, delayMs, error }) =>
            this.opts.logger.warn("DDL append failed; retrying", { collection: name, op: opName, partition, attempt, delayMs, err: error }),
        });
        this.opts.observer?.ddlAppend?.(opName, r.deduplicated ? "deduplicated" : "appended");
        return r.ts;
      } catch (e) {
        this.opts.observer?.ddlAppend?.(opName, "failed");
        if (signal.aborted)
          throw new UnavailableError(`the meta-manager is shutting down; the ${opName} of collection ${quote(name)} resumes after restart`, { cause: e });
        const state = isCreate ? "CREATING" : "DROPPING";
        if (isRetryable(e)) {
          throw new UnavailableError(
            `collection ${quote(name)}: the ${opName} entry could not be journaled in partition ${partition} (${messageOf(e)}); ` +
              `it stays ${state}: retrying the request resumes it, and the meta-manager retries in the background`,
            { cause: e },
          );
        }
        throw new InternalError(`collection ${quote(name)}: journal partition ${partition} rejected the ${opName} entry: ${messageOf(e)} (it stays ${state})`, {
          cause: e,
        });
      }
    });
    const ts = await Promise.all(appends);
    return ts.reduce((a, b) => (b > a ? b : a), 0n);
  }

  /** Runs `attempt` until it returns something other than RETRY, with jittered pauses, at most casMaxAttempts times. */
  private async cas<T>(signal: AbortSignal, what: string, attempt: () => Promise<T | typeof RETRY>): Promise<T> {
    const delays = backoffDelays({ initialMs: 2, maxMs: 200, multiplier: 2, jitter: "full" });
    for (let i = 1; ; i++) {
      signal.throwIfAborted();
      const r = await attempt();
      if (r !== RETRY) return r;
      if (i >= this.casMaxAttempts) throw new AbortedError(`${what}: the catalog kept changing concurrently (${i} attempts); retry`);
      await abortableSleep(delays.next().value ?? 200, signal);
    }
  }

  private snapshot(signal: AbortSignal): Promise<CatalogSnapshot> {
    return readCatalogSnapshot(this.opts.store, this.keys, signal);
  }

  private toProto(rec: CollectionRecord, createRevision: number): CatalogCollection {
    const collection = clone(CollectionSchema, rec.spec);
    collection.createdTs = rec.createdTs;
    return create(CatalogCollectionSchema, {
      collection,
      uid: rec.uid,
      shards: rec.shards.map((s) => ({ shard: s.shard, partition: s.partition, replicas: [...s.replicas] })),
      createdRevision: BigInt(createRevision),
      state: STATE[rec.state],
    });
  }

  private toCatalog(snap: CatalogSnapshot): CatalogMessage {
    const byName = [...snap.collections.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return create(CatalogSchema, {
      revision: BigInt(snap.revision),
      collections: byName.filter(([, c]) => c.rec.state === "ready").map(([, c]) => this.toProto(c.rec, c.createRevision)),
      pendingCollections: byName.filter(([, c]) => c.rec.state !== "ready").map(([, c]) => this.toProto(c.rec, c.createRevision)),
      nodes: [...snap.nodes.values()]
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .map((n) => create(RegisteredNodeSchema, { id: n.id, roles: [...n.roles], address: n.address, alive: snap.alive.has(n.id) })),
      partitions: this.opts.partitions,
      journalAddress: this.opts.journalAddress,
      journalPartitions: [...snap.journalPartitions.values()]
        .sort((a, b) => a.rec.partition - b.rec.partition)
        .map(({ rec }) =>
          create(JournalPartitionSchema, {
            partition: rec.partition,
            leader: rec.leader,
            epoch: BigInt(rec.epoch),
            replicas: [...rec.replicas],
            leaderAddress: rec.leaderAddress,
          }),
        ),
    });
  }

  /** Records the partition count on first start; refuses a different one later. */
  private async checkCluster(signal?: AbortSignal): Promise<void> {
    const store = this.opts.store;
    const opts = signal ? { signal } : {};
    let kv = await store.get(this.keys.cluster, opts);
    if (kv === undefined) {
      const res = await store.txn(
        {
          compares: [{ key: this.keys.cluster, modRevision: 0 }],
          puts: [{ key: this.keys.cluster, value: encodeCluster({ partitions: this.opts.partitions }) }],
        },
        opts,
      );
      if (res.committed) return;
      kv = await store.get(this.keys.cluster, opts);
      if (kv === undefined) throw new InternalError("the cluster record vanished while it was being created");
    }
    const { partitions } = decodeCluster(kv.key, kv.value);
    if (partitions !== this.opts.partitions) {
      throw new FailedPreconditionError(
        `the catalog was created for ${partitions} journal partitions but partitions is ${this.opts.partitions}; ` +
          `the journal's partition count is fixed when its data directory is created, so the two must agree`,
      );
    }
  }

  private async reconcileLoop(): Promise<void> {
    const signal = this.stop.signal;
    let delays = backoffDelays({ initialMs: 500, maxMs: 30_000, multiplier: 2, jitter: 0.3 });
    for (;;) {
      let pause = this.opts.reconcileIntervalMs;
      try {
        const { remaining } = await this.reconcile(signal);
        if (remaining === 0) {
          delays = backoffDelays({ initialMs: 500, maxMs: 30_000, multiplier: 2, jitter: 0.3 });
          if (pause === 0) return;
        } else if (pause === 0) {
          // Only the startup pass was asked for, but it left work behind: keep at it.
          pause = delays.next().value ?? 30_000;
        }
      } catch (e) {
        if (signal.aborted) return;
        pause = delays.next().value ?? 30_000;
        this.opts.logger.warn("catalog reconcile pass failed; retrying", { err: e, retryInMs: pause });
      }
      try {
        await abortableSleep(pause, signal);
      } catch {
        // Aborted: the catalog is closing.
        return;
      }
    }
  }
}
