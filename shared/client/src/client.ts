import { randomUUID } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { CallOptions as ConnectCallOptions, Client, Interceptor, Transport } from "@connectrpc/connect";
import { abortReason, abortableSleep, backoffDelays, retry } from "@vecraft/common";
import type { RetryOptions } from "@vecraft/common";
import { VecraftService } from "@vecraft/rpc";
import {
  changesFromProto,
  clusterStatusFromProto,
  collectionFromProto,
  collectionSpecToProto,
  consistencyToProto,
  hitFromProto,
  lineageEntryFromProto,
  operationFromProto,
  positionFromProto,
  recordFromProto,
  recordToProto,
  vectorToProto,
  versionFromProto,
} from "./convert.js";
import { isRetryableRead, isRetryableWrite, resolveRetryPolicy } from "./retry-policy.js";
import type { ResolvedRetryPolicy, RetryPolicy } from "./retry-policy.js";
import { SessionTokenTracker } from "./session.js";
import { callHeaders, createVecraftTransport } from "./transport.js";
import type { Protocol } from "./transport.js";
import type {
  ChangeBatch,
  ClusterStatus,
  CollectionInfo,
  CollectionSpec,
  ConsistencyInput,
  GetResult,
  OperationsPage,
  QueryPage,
  RecordHistoryPage,
  RecordInput,
  RequestLineage,
  SearchResult,
  VectorInput,
  WriteResult,
} from "./types.js";

/** Default deadline of each attempt of a unary call. */
export const DEFAULT_TIMEOUT_MS = 30_000;

export interface VecraftClientOptions {
  /** The gateway, e.g. "http://127.0.0.1:8080". Required unless `transport` is given. */
  baseUrl?: string;
  /**
   * A ready transport (e.g. `createRouterTransport` in tests); `baseUrl`, `protocol`,
   * `httpVersion`, `format` and `interceptors` are then ignored.
   */
  transport?: Transport;
  /** Sent as `authorization: Bearer <key>`. */
  apiKey?: string;
  /** "grpc" (default: gRPC over HTTP/2) or "connect" (Connect protocol). */
  protocol?: Protocol;
  /** Connect protocol only: "1.1" (default) or "2". */
  httpVersion?: "1.1" | "2";
  /** Connect protocol only: "json" (default) or "binary". */
  format?: "json" | "binary";
  /** Deadline of each attempt of a unary call, in ms; default 30 s; 0 for none. */
  timeoutMs?: number;
  /** Retry policy for transient failures; `false` for none. */
  retry?: RetryPolicy | false;
  /** A session token to start from (e.g. carried over from another process). */
  sessionToken?: string;
  /** The consistency of reads that do not say; default: the server's (bounded, 1 s). */
  consistency?: ConsistencyInput;
  /** Extra headers on every call. */
  headers?: Readonly<Record<string, string>>;
  /** Interceptors of the transport the client creates. */
  interceptors?: readonly Interceptor[];
}

/** Options every call takes. */
export interface CallOptions {
  /** Aborts the call, its retries and their waits. */
  signal?: AbortSignal;
  /** Deadline of each attempt, in ms; overrides the client's `timeoutMs`. */
  timeoutMs?: number;
  /** Extra headers for this call. */
  headers?: Readonly<Record<string, string>>;
}

export interface WriteOptions extends CallOptions {
  /** Idempotency key; a UUID is made up when absent. Every retry carries the same one. */
  requestId?: string;
  /** Causal token to present instead of the one the client tracks. */
  sessionToken?: string;
}

export interface ReadOptions extends CallOptions {
  /** Overrides the client's default consistency. */
  consistency?: ConsistencyInput;
  /** Staleness bound of a bounded read, in ms (when the level object does not say). */
  stalenessMs?: number;
}

export interface SearchOptions extends ReadOptions {
  /** How many hits, 1..1000; default 10. */
  k?: number;
  /** A metadata filter: `{ genre: "drama", year: { $gte: 2000 } }`. */
  filter?: JsonObject;
  /** HNSW candidate list size for this search; default the collection's. */
  ef?: number;
  includeVectors?: boolean;
  includeMetadata?: boolean;
  /** Return what the reachable shards have instead of failing. */
  allowPartialResults?: boolean;
}

export interface PageOptions extends ReadOptions {
  /** Page size, 1..1000; default the server's (100). */
  limit?: number;
  /** Continue after the page that returned this token. */
  pageToken?: string;
}

export interface QueryOptions extends PageOptions {
  /** A metadata filter; absent matches every record. */
  filter?: JsonObject;
}

export interface ListOperationsOptions extends PageOptions {
  collection?: string;
  principal?: string;
  /** Only operations with ts >= fromTs. */
  fromTs?: bigint;
  /** Only operations with ts <= toTs. */
  toTs?: bigint;
}

export interface WatchOptions {
  /** Ends the stream. */
  signal?: AbortSignal;
  /** Deliver changes with ts >= fromTs; default from the start of the retained journal. */
  fromTs?: bigint;
  includeVectors?: boolean;
  includeMetadata?: boolean;
  headers?: Readonly<Record<string, string>>;
  /**
   * Reconnect after a transient failure, resuming after the last `resolvedTs` received (no
   * gaps, no duplicates), within the retry budget. Default true.
   */
  reconnect?: boolean;
}

type RawClient = Client<typeof VecraftService>;

/**
 * The Vecraft SDK: typed methods over `VecraftService`, with session tokens kept
 * automatically (read-your-writes) and transient failures retried with backoff, writes
 * always with the same request id so that a retry never applies twice. Every error is a
 * `ConnectError` carrying the server's code and message.
 */
export class VecraftClient {
  /** The underlying Connect client, for anything the friendly methods do not cover. */
  readonly raw: RawClient;
  readonly #session: SessionTokenTracker;
  readonly #retry: ResolvedRetryPolicy;
  readonly #timeoutMs: number;
  readonly #consistency: ConsistencyInput | undefined;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #close: () => void;

  constructor(options: VecraftClientOptions) {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
      throw new RangeError(`timeoutMs must be >= 0, got ${timeoutMs}`);
    }
    this.#timeoutMs = timeoutMs;
    this.#retry = resolveRetryPolicy(options.retry);
    this.#session = new SessionTokenTracker(options.sessionToken);
    this.#consistency = options.consistency;
    const headers = options.headers ?? {};
    let transport: Transport;
    if (options.transport !== undefined) {
      transport = options.transport;
      // The caller's transport has no interceptor of ours: every call carries the headers.
      this.#headers = callHeaders(options.apiKey, headers);
      this.#close = () => undefined;
    } else {
      if (options.baseUrl === undefined || options.baseUrl === "") {
        throw new TypeError("createVecraftClient needs a baseUrl (or a transport)");
      }
      let url: URL;
      try {
        url = new URL(options.baseUrl);
      } catch {
        throw new TypeError(`baseUrl is not a URL: ${JSON.stringify(options.baseUrl)}`);
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw new TypeError(`baseUrl must be http:// or https://, got ${JSON.stringify(options.baseUrl)}`);
      }
      const owned = createVecraftTransport({
        baseUrl: options.baseUrl,
        protocol: options.protocol ?? "grpc",
        httpVersion: options.httpVersion ?? "1.1",
        useBinaryFormat: options.format === "binary",
        apiKey: options.apiKey,
        headers,
        interceptors: options.interceptors ?? [],
      });
      transport = owned.transport;
      this.#headers = {};
      this.#close = owned.close;
    }
    this.raw = createClient(VecraftService, transport);
  }

  /** The greatest session token seen so far (undefined before the first). */
  get sessionToken(): string | undefined {
    return this.#session.value;
  }

  /** Replaces the session token, e.g. with one carried over from another process. */
  set sessionToken(token: string | undefined) {
    this.#session.value = token;
  }

  /** Closes the connection the client opened (a no-op with a caller's transport). */
  close(): void {
    this.#close();
  }

  // ---- collections -----------------------------------------------------------------

  async createCollection(spec: CollectionSpec, opts: WriteOptions = {}): Promise<CollectionInfo> {
    const requestId = opts.requestId ?? randomUUID();
    const res = await this.#call("CreateCollection", "write", opts, requestId, (o) =>
      this.raw.createCollection({ ...collectionSpecToProto(spec), requestId }, o),
    );
    return collectionFromProto(res.collection);
  }

  async describeCollection(name: string, opts: CallOptions = {}): Promise<CollectionInfo> {
    const res = await this.#call("DescribeCollection", "read", opts, undefined, (o) => this.raw.describeCollection({ name }, o));
    return collectionFromProto(res.collection);
  }

  async listCollections(opts: CallOptions = {}): Promise<CollectionInfo[]> {
    const res = await this.#call("ListCollections", "read", opts, undefined, (o) => this.raw.listCollections({}, o));
    return res.collections.map((c) => collectionFromProto(c));
  }

  async dropCollection(name: string, opts: WriteOptions = {}): Promise<void> {
    const requestId = opts.requestId ?? randomUUID();
    await this.#call("DropCollection", "write", opts, requestId, (o) => this.raw.dropCollection({ name, requestId }, o));
  }

  // ---- writes ----------------------------------------------------------------------

  /** Inserts or replaces records; the batch is validated whole, nothing partial is written. */
  async upsert(collection: string, records: readonly RecordInput[], opts: WriteOptions = {}): Promise<WriteResult> {
    const requestId = opts.requestId ?? randomUUID();
    // Every attempt sends the same request: same id, same records, same causal token.
    const req = { collection, records: records.map((r) => recordToProto(r)), requestId, sessionToken: this.#writeToken(opts) };
    const res = await this.#call("Upsert", "write", opts, requestId, (o) => this.raw.upsert(req, o));
    this.#session.observe(res.sessionToken);
    return { count: res.upserted, sessionToken: res.sessionToken, requestId: res.requestId || requestId, entries: res.entries.map(positionFromProto) };
  }

  /** Deletes records by id (blind: missing ids are counted too). */
  async delete(collection: string, ids: readonly string[], opts: WriteOptions = {}): Promise<WriteResult> {
    const requestId = opts.requestId ?? randomUUID();
    const req = { collection, ids: [...ids], requestId, sessionToken: this.#writeToken(opts) };
    const res = await this.#call("Delete", "write", opts, requestId, (o) => this.raw.delete(req, o));
    this.#session.observe(res.sessionToken);
    return { count: res.deleted, sessionToken: res.sessionToken, requestId: res.requestId || requestId, entries: res.entries.map(positionFromProto) };
  }

  // ---- reads -----------------------------------------------------------------------

  /** The k nearest records to `vector`, best first. */
  async search(collection: string, vector: VectorInput, opts: SearchOptions = {}): Promise<SearchResult> {
    const includeVectors = opts.includeVectors ?? false;
    const req = {
      collection,
      vector: vectorToProto(vector),
      k: opts.k ?? 10,
      ...(opts.filter !== undefined ? { filter: opts.filter } : {}),
      ef: opts.ef ?? 0,
      includeVectors,
      includeMetadata: opts.includeMetadata ?? false,
      allowPartialResults: opts.allowPartialResults ?? false,
    };
    const res = await this.#read("Search", opts, (consistency, o) => this.raw.search({ ...req, ...consistency }, o));
    return {
      hits: res.hits.map((h) => hitFromProto(h, includeVectors)),
      readTs: res.readTs,
      sessionToken: res.sessionToken,
      missingShards: res.missingShards,
    };
  }

  /** Records by id; ids that do not exist are listed in `missingIds`. */
  async get(collection: string, ids: readonly string[], opts: ReadOptions = {}): Promise<GetResult> {
    const res = await this.#read("Get", opts, (consistency, o) => this.raw.get({ collection, ids: [...ids], ...consistency }, o));
    return { records: res.records.map(recordFromProto), missingIds: res.missingIds, readTs: res.readTs, sessionToken: res.sessionToken };
  }

  /** One page of the records whose metadata matches a filter, ordered by id. */
  async query(collection: string, opts: QueryOptions = {}): Promise<QueryPage> {
    const res = await this.#read("Query", opts, (consistency, o) =>
      this.raw.query(
        {
          collection,
          ...(opts.filter !== undefined ? { filter: opts.filter } : {}),
          limit: opts.limit ?? 0,
          pageToken: opts.pageToken ?? "",
          ...consistency,
        },
        o,
      ),
    );
    return { records: res.records.map(recordFromProto), nextPageToken: res.nextPageToken, readTs: res.readTs, sessionToken: res.sessionToken };
  }

  /** Every page of a query, one call per page, stopping after the last. */
  queryPages(collection: string, opts: QueryOptions = {}): AsyncGenerator<QueryPage, void, undefined> {
    return pages(opts.pageToken, (pageToken) => this.query(collection, { ...opts, pageToken }));
  }

  // ---- journal ---------------------------------------------------------------------

  /** One page of a record's versions, oldest first (deleted records too). */
  async getRecordHistory(collection: string, id: string, opts: PageOptions = {}): Promise<RecordHistoryPage> {
    const res = await this.#read("GetRecordHistory", opts, (consistency, o) =>
      this.raw.getRecordHistory({ collection, id, limit: opts.limit ?? 0, pageToken: opts.pageToken ?? "", ...consistency }, o),
    );
    return { versions: res.versions.map(versionFromProto), nextPageToken: res.nextPageToken, readTs: res.readTs, sessionToken: res.sessionToken };
  }

  /** Every page of a record's history. */
  getRecordHistoryPages(collection: string, id: string, opts: PageOptions = {}): AsyncGenerator<RecordHistoryPage, void, undefined> {
    return pages(opts.pageToken, (pageToken) => this.getRecordHistory(collection, id, { ...opts, pageToken }));
  }

  /** The journal entries a request produced, and where each has been applied. */
  async getRequestLineage(requestId: string, opts: ReadOptions = {}): Promise<RequestLineage> {
    const res = await this.#read("GetRequestLineage", opts, (consistency, o) => this.raw.getRequestLineage({ requestId, ...consistency }, o));
    return { requestId: res.requestId, entries: res.entries.map(lineageEntryFromProto), readTs: res.readTs, sessionToken: res.sessionToken };
  }

  /** One page of operations in global (ts, partition, offset) order. */
  async listOperations(opts: ListOperationsOptions = {}): Promise<OperationsPage> {
    const res = await this.#read("ListOperations", opts, (consistency, o) =>
      this.raw.listOperations(
        {
          collection: opts.collection ?? "",
          principal: opts.principal ?? "",
          fromTs: opts.fromTs ?? 0n,
          toTs: opts.toTs ?? 0n,
          limit: opts.limit ?? 0,
          pageToken: opts.pageToken ?? "",
          ...consistency,
        },
        o,
      ),
    );
    return { operations: res.operations.map(operationFromProto), nextPageToken: res.nextPageToken, readTs: res.readTs, sessionToken: res.sessionToken };
  }

  /** Every page of operations. */
  listOperationsPages(opts: ListOperationsOptions = {}): AsyncGenerator<OperationsPage, void, undefined> {
    return pages(opts.pageToken, (pageToken) => this.listOperations({ ...opts, pageToken }));
  }

  /**
   * The changes of a collection in global order: the committed ones from `fromTs`, then
   * live ones. Pull-based: the stream advances as the caller iterates; `break` or the
   * signal ends it. Heartbeats (no changes) are yielded too, so callers can checkpoint
   * `resolvedTs`.
   */
  async *watchChanges(collection: string, opts: WatchOptions = {}): AsyncGenerator<ChangeBatch, void, undefined> {
    const { signal } = opts;
    const p = this.#retry;
    let fromTs = opts.fromTs ?? 0n;
    let delays = this.#delays();
    let failures = 0;
    let failingSince = 0;
    for (;;) {
      try {
        const stream = this.raw.watchChanges(
          { collection, fromTs, includeVectors: opts.includeVectors ?? false, includeMetadata: opts.includeMetadata ?? false },
          { headers: { ...this.#headers, ...opts.headers }, ...(signal !== undefined ? { signal } : {}) },
        );
        for await (const msg of stream) {
          // Progress: a later failure starts a fresh backoff from the position reached.
          failures = 0;
          delays = this.#delays();
          if (msg.resolvedTs >= fromTs) fromTs = msg.resolvedTs + 1n;
          yield changesFromProto(msg);
        }
        return;
      } catch (e) {
        const err = toClientError(e, signal);
        if (signal?.aborted === true || opts.reconnect === false || !isRetryableRead(err)) throw err;
        failures++;
        if (failures === 1) failingSince = performance.now();
        const next = delays.next();
        if (failures >= p.maxAttempts || next.done === true || performance.now() - failingSince + next.value > p.budgetMs) throw err;
        p.onRetry?.({ method: "WatchChanges", attempt: failures, delayMs: next.value, error: err });
        try {
          await abortableSleep(next.value, signal);
        } catch (abort) {
          throw toClientError(abort, signal);
        }
      }
    }
  }

  // ---- cluster ---------------------------------------------------------------------

  async getClusterStatus(opts: CallOptions = {}): Promise<ClusterStatus> {
    const res = await this.#call("GetClusterStatus", "read", opts, undefined, (o) => this.raw.getClusterStatus({}, o));
    return clusterStatusFromProto(res);
  }

  // ---- plumbing --------------------------------------------------------------------

  #writeToken(opts: WriteOptions): string {
    return opts.sessionToken ?? this.#session.value ?? "";
  }

  #delays(): Generator<number, void, undefined> {
    const p = this.#retry;
    return backoffDelays({
      initialMs: p.initialMs,
      maxMs: p.maxMs,
      multiplier: p.multiplier,
      jitter: p.jitter,
      ...(p.random !== undefined ? { random: p.random } : {}),
    });
  }

  /**
   * A read: the consistency message is built once per attempt, so that a retried session
   * read presents the newest token, and the response's token is merged into the session.
   */
  async #read<R extends { sessionToken: string }>(
    method: string,
    opts: ReadOptions,
    fn: (consistency: { consistency?: ReturnType<typeof consistencyToProto> }, o: ConnectCallOptions) => Promise<R>,
  ): Promise<R> {
    const level = opts.consistency ?? this.#consistency;
    const build = (): { consistency?: ReturnType<typeof consistencyToProto> } =>
      level === undefined ? {} : { consistency: consistencyToProto(level, this.#session.value, opts.stalenessMs) };
    // Validate before the first attempt so that bad input is not retried.
    build();
    const res = await this.#call(method, "read", opts, undefined, (o) => fn(build(), o));
    this.#session.observe(res.sessionToken);
    return res;
  }

  async #call<R>(
    method: string,
    kind: "read" | "write",
    opts: CallOptions,
    requestId: string | undefined,
    fn: (o: ConnectCallOptions) => Promise<R>,
  ): Promise<R> {
    const p = this.#retry;
    const { signal } = opts;
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    const callOptions: ConnectCallOptions = {
      headers: { ...this.#headers, ...opts.headers },
      ...(timeoutMs > 0 ? { timeoutMs } : {}),
      ...(signal !== undefined ? { signal } : {}),
    };
    const retryOptions: RetryOptions = {
      budgetMs: p.budgetMs,
      initialMs: p.initialMs,
      maxMs: p.maxMs,
      multiplier: p.multiplier,
      jitter: p.jitter,
      maxAttempts: p.maxAttempts,
      isRetryable: kind === "write" ? isRetryableWrite : isRetryableRead,
      onRetry: (info) =>
        p.onRetry?.({
          method,
          attempt: info.attempt,
          delayMs: info.delayMs,
          error: ConnectError.from(info.error),
          ...(requestId !== undefined ? { requestId } : {}),
        }),
      ...(signal !== undefined ? { signal } : {}),
      ...(p.random !== undefined ? { random: p.random } : {}),
    };
    try {
      return await retry(() => fn(callOptions), retryOptions);
    } catch (e) {
      throw toClientError(e, signal);
    }
  }
}

/** Follows page tokens until the server returns an empty one. */
async function* pages<P extends { nextPageToken: string }>(
  first: string | undefined,
  fetch: (pageToken: string) => Promise<P>,
): AsyncGenerator<P, void, undefined> {
  let token = first ?? "";
  for (;;) {
    const page = await fetch(token);
    yield page;
    if (page.nextPageToken === "" || page.nextPageToken === token) return;
    token = page.nextPageToken;
  }
}

/**
 * Everything the SDK throws is a ConnectError: server errors as they came, an abort of
 * the caller's signal (also during a backoff wait) as Canceled with the reason as cause.
 */
function toClientError(e: unknown, signal: AbortSignal | undefined): ConnectError {
  if (e instanceof ConnectError) return e;
  if (signal?.aborted === true) {
    return new ConnectError("the operation was aborted", Code.Canceled, undefined, undefined, abortReason(signal));
  }
  return ConnectError.from(e, Code.Internal);
}

/** Creates a client; see `VecraftClientOptions`. Validates the options now. */
export function createVecraftClient(options: VecraftClientOptions): VecraftClient {
  return new VecraftClient(options);
}
