// The etcd MetaStore (cluster mode), on the `etcd3` client's raw KV, Watch and Lease RPCs.
//
// Mapping:
// - revisions are etcd's: `revision` is the header revision, `createRevision`/`modRevision`/
//   `version` are the key's create_revision/mod_revision/version; etcd bumps its revision
//   once per transaction that changes something, exactly like the contract says.
// - `txn` is one etcd Txn: every compare is `mod_revision == n` (etcd compares a missing key
//   as revision 0), the success branch holds the puts and deletes, there is no failure branch.
// - `range(prefix)` is a range get [prefix, prefixEnd(prefix)) (all keys for ""), key order.
// - `watch` opens its own etcd watch stream from a revision. etcd pushes; the events go into
//   a bounded buffer (`watchBufferEvents`, or one etcd response if that is larger: etcd
//   batches at most 1000 revisions per response) that the pull-based iterator drains. A full buffer
//   ends the watch with WatchOverflowError (never drops, never blocks the stream); a
//   compacted start revision ends it with WatchCompactedError. When the stream breaks (etcd
//   restarted, connection lost) the watch re-creates it from the revision after the last
//   event it received, for up to `watchReconnectMs`, then fails with UnavailableError.
//   We do not use etcd3's resuming Watcher: it resumes from the *header* revision of the
//   last response, which can skip events that were not yet delivered.
// - leases are etcd leases. etcd counts TTLs in whole seconds and enforces a minimum (1.5 s
//   with the default election timeout), so `grantLease(ttlMs)` grants
//   max(2, ceil(ttlMs / 1000)) seconds: a lease may live up to a second longer than asked
//   (and, as in etcd, gets its full TTL again after a leader change). Leases granted by this
//   store are etcd3 `Lease` objects without automatic keep-alive; `keepAlive` renews once.
//   When etcd reports one gone the Lease emits `lost`, and from then on it is dead for this
//   store: `keepAlive` answers false without asking etcd (CONVENTIONS.md rule 10).
//   Leases granted elsewhere (another process, before a reopen) are renewed with raw calls.
// - Every call that waits takes an AbortSignal and has a deadline (`callTimeoutMs`); an
//   unreachable etcd becomes UnavailableError("etcd at <endpoints> is unreachable: ...").
//   etcd3's retry and circuit-breaker policies are disabled: the caller owns retries, and a
//   restarted etcd is usable at once instead of after a breaker's half-open delay.
import {
  InvalidArgumentError,
  ResourceExhaustedError,
  UnavailableError,
  abortReason,
  raceSignal,
  isVecraftError,
  type Logger,
} from "@vecraft/common";
import { Etcd3, EtcdLeaseInvalidError, GRPCDeadlineExceededError, type IKeyValue, type IOptions, type IRequestOp, type Lease } from "etcd3";
import {
  LeaseNotFoundError,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  WatchCompactedError,
  WatchOverflowError,
  prefixEnd,
  type CallOptions,
  type KeyValue,
  type LeaseId,
  type MetaStore,
  type RangeOptions,
  type RangeResult,
  type TxnRequest,
  type TxnResult,
  type WatchEvent,
} from "./meta-store.js";

export interface EtcdMetaStoreOptions {
  /** etcd client URLs, e.g. ["http://127.0.0.1:2379"]. */
  readonly endpoints: readonly string[];
  /** Deadline of every unary call (default 5 s). */
  readonly callTimeoutMs?: number;
  /** Events a watch buffers for a slow consumer before failing with WatchOverflowError (default 1024; one etcd response is always accepted into an empty buffer). */
  readonly watchBufferEvents?: number;
  /** Concurrent watches allowed (default 1024); more fail with ResourceExhausted. */
  readonly maxWatches?: number;
  /** How long a watch whose stream broke keeps re-creating it before failing (default 10 s; 0: fail at once). */
  readonly watchReconnectMs?: number;
  /** Longest lease time to live accepted (default 1 hour). */
  readonly maxLeaseTtlMs?: number;
  /** Leases granted by this store that it tracks (for the `lost` event); older ones fall back to raw calls (default 10 000). */
  readonly maxTrackedLeases?: number;
  readonly logger?: Logger;
}

const LEASE_ID = /^[1-9][0-9]{0,18}$/;
const ALL_KEYS = Buffer.from([0]);
const RECONNECT_DELAY_MS = 200;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** etcd's TTL for a requested ttl: whole seconds, rounded up, at least 2 (etcd's minimum is 1.5 s by default). */
export function etcdLeaseTtlSeconds(ttlMs: number): number {
  return Math.max(2, Math.ceil(ttlMs / 1000));
}

function encodeKey(key: string, what = "key"): Buffer {
  if (typeof key !== "string" || key === "") throw new InvalidArgumentError(`${what}: must be a non-empty string`);
  const b = Buffer.from(key, "utf8");
  if (b.toString("utf8") !== key) throw new InvalidArgumentError(`${what}: not well-formed UTF-16 (lone surrogate)`);
  if (b.length > MAX_KEY_BYTES) throw new InvalidArgumentError(`${what}: ${b.length} bytes, at most ${MAX_KEY_BYTES} allowed`);
  return b;
}

function toKv(kv: IKeyValue): KeyValue {
  return {
    key: utf8.decode(kv.key),
    value: new Uint8Array(kv.value.buffer, kv.value.byteOffset, kv.value.byteLength),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    version: Number(kv.version),
    lease: kv.lease === "0" || kv.lease === "" || kv.lease === undefined ? undefined : String(kv.lease),
  };
}

/** A policy that runs the call once: no retries, no circuit breaker. */
const once = {
  // async: a synchronous throw in `fn` must become a rejection (etcd3's markFailed relies on it).
  execute: async <T>(fn: (ctx: { signal: AbortSignal }) => T | Promise<T>): Promise<T> => fn({ signal: new AbortController().signal }),
};

/** The errors etcd3 and grpc-js raise when the server cannot be reached or does not answer. */
function isUnreachable(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (e instanceof GRPCDeadlineExceededError) return true;
  const name = e.constructor.name;
  if (name === "GRPCUnavailableError" || name === "GRPCCancelledError" || name === "EtcdWatchStreamEnded" || name === "ClientClosedError") return true;
  return /unavailable|no connection|ECONNREFUSED|ECONNRESET|deadline exceeded|connection dropped|stream removed/i.test(e.message);
}

/** True when `e` is the reason `signal` aborted with (it passes through untranslated). */
function isAbortOf(signal: AbortSignal | undefined, e: unknown): boolean {
  return signal !== undefined && signal.aborted && e === signal.reason;
}

interface WatchState {
  fail(e: Error): void;
}

export class EtcdMetaStore implements MetaStore {
  private readonly client: Etcd3;
  private readonly endpointsText: string;
  private readonly callTimeoutMs: number;
  private readonly watchBufferEvents: number;
  private readonly maxWatches: number;
  private readonly watchReconnectMs: number;
  private readonly maxLeaseTtlMs: number;
  private readonly maxTrackedLeases: number;
  private closed = false;
  private readonly watches = new Set<WatchState>();
  /** Leases granted here, by id; bounded by maxTrackedLeases (oldest dropped). */
  private readonly leases = new Map<LeaseId, Lease>();
  /** Leases this store saw lost (`lost` event); bounded like `leases`. */
  private readonly lostLeases = new Set<LeaseId>();

  constructor(private readonly opts: EtcdMetaStoreOptions) {
    if (opts.endpoints.length === 0 || opts.endpoints.some((e) => typeof e !== "string" || e === "")) throw new InvalidArgumentError("etcd endpoints: at least one is required");
    this.endpointsText = opts.endpoints.join(",");
    this.callTimeoutMs = opts.callTimeoutMs ?? 5_000;
    this.watchBufferEvents = opts.watchBufferEvents ?? 1024;
    this.maxWatches = opts.maxWatches ?? 1024;
    this.watchReconnectMs = opts.watchReconnectMs ?? 10_000;
    this.maxLeaseTtlMs = opts.maxLeaseTtlMs ?? 3_600_000;
    this.maxTrackedLeases = opts.maxTrackedLeases ?? 10_000;
    for (const [name, n, min] of [
      ["callTimeoutMs", this.callTimeoutMs, 1],
      ["watchBufferEvents", this.watchBufferEvents, 1],
      ["maxWatches", this.maxWatches, 1],
      ["watchReconnectMs", this.watchReconnectMs, 0],
      ["maxLeaseTtlMs", this.maxLeaseTtlMs, 2000],
      ["maxTrackedLeases", this.maxTrackedLeases, 1],
    ] as const) {
      if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name}: ${n} is not an integer >= ${min}`);
    }
    const options: IOptions = {
      hosts: opts.endpoints.map((e) => e.replace(/^https?:\/\//, "")),
      // The pool's policies are cockatiel policies; a run-once policy has the same shape.
      faultHandling: { host: () => once as never, global: once as never },
      grpcOptions: {
        // Reconnect to a restarted etcd within a second rather than after grpc's 2-minute cap.
        "grpc.initial_reconnect_backoff_ms": 100,
        "grpc.max_reconnect_backoff_ms": 1000,
      },
    };
    this.client = new Etcd3(options);
  }

  /** The endpoints, as in error messages. */
  get endpoints(): string {
    return this.endpointsText;
  }

  // ---------------------------------------------------------------------------------
  // Reads and transactions

  async get(key: string, options: CallOptions = {}): Promise<KeyValue | undefined> {
    const k = encodeKey(key);
    const res = await this.call("get", options, (o) => this.client.kv.range({ key: k }, o));
    const kv = res.kvs[0];
    return kv === undefined ? undefined : toKv(kv);
  }

  async range(prefix: string, options: RangeOptions = {}): Promise<RangeResult> {
    const limit = options.limit ?? 0;
    if (!Number.isSafeInteger(limit) || limit < 0) throw new InvalidArgumentError(`limit: ${limit} is not a non-negative integer`);
    const { key, rangeEnd } = this.prefixRange(prefix);
    const res = await this.call("range", options, (o) => this.client.kv.range({ key, range_end: rangeEnd, limit }, o));
    return { kvs: res.kvs.map(toKv), revision: Number(res.header.revision), more: res.more };
  }

  async txn(request: TxnRequest, options: CallOptions = {}): Promise<TxnResult> {
    const compare = (request.compares ?? []).map((c, i) => {
      if (!Number.isSafeInteger(c.modRevision) || c.modRevision < 0) {
        throw new InvalidArgumentError(`compares[${i}].modRevision: ${c.modRevision} is not a non-negative integer`);
      }
      return { key: encodeKey(c.key, `compares[${i}].key`), target: "Mod" as const, result: "Equal" as const, mod_revision: c.modRevision };
    });
    const seen = new Set<string>();
    const onlyOnce = (key: string, what: string): void => {
      if (seen.has(key)) throw new InvalidArgumentError(`${what}: key ${JSON.stringify(key)} appears more than once in the transaction`);
      seen.add(key);
    };
    const leases = new Set<LeaseId>();
    const success: IRequestOp[] = [];
    (request.puts ?? []).forEach((p, i) => {
      const key = encodeKey(p.key, `puts[${i}].key`);
      onlyOnce(p.key, `puts[${i}]`);
      if (!(p.value instanceof Uint8Array)) throw new InvalidArgumentError(`puts[${i}].value: must be bytes`);
      if (p.value.byteLength > MAX_VALUE_BYTES) {
        throw new InvalidArgumentError(`puts[${i}].value: ${p.value.byteLength} bytes, at most ${MAX_VALUE_BYTES} allowed`);
      }
      if (p.lease !== undefined) leases.add(this.checkLeaseId(p.lease));
      success.push({ request_put: { key, value: Buffer.from(p.value.buffer, p.value.byteOffset, p.value.byteLength), lease: p.lease ?? 0 } });
    });
    (request.deletes ?? []).forEach((k, i) => {
      const key = encodeKey(k, `deletes[${i}]`);
      onlyOnce(k, `deletes[${i}]`);
      success.push({ request_delete_range: { key } });
    });
    try {
      const res = await this.call("txn", options, (o) => this.client.kv.txn({ compare, success, failure: [] }, o));
      return { committed: res.succeeded, revision: Number(res.header.revision) };
    } catch (e) {
      if (e instanceof EtcdLeaseInvalidError) throw new LeaseNotFoundError([...leases].join(","), { cause: e });
      throw e;
    }
  }

  async revision(options: CallOptions = {}): Promise<number> {
    const res = await this.call("revision", options, (o) => this.client.kv.range({ key: ALL_KEYS, count_only: true }, o));
    return Number(res.header.revision);
  }

  // ---------------------------------------------------------------------------------
  // Watches

  watch(prefix: string, fromRevision: number, signal: AbortSignal): AsyncIterable<WatchEvent> {
    return this.watchEvents(prefix, fromRevision, signal);
  }

  private async *watchEvents(prefix: string, fromRevision: number, signal: AbortSignal): AsyncGenerator<WatchEvent> {
    this.open();
    if (!Number.isSafeInteger(fromRevision) || fromRevision < 0) {
      throw new InvalidArgumentError(`fromRevision: ${fromRevision} is not a non-negative integer`);
    }
    const { key, rangeEnd } = this.prefixRange(prefix);
    if (this.watches.size >= this.maxWatches) throw new ResourceExhaustedError(`too many watches on the meta store (${this.maxWatches}); retry later`);
    // Resolve "from now" to a revision so that a re-created stream resumes at the same place.
    const start = fromRevision === 0 ? (await this.revision({ signal })) + 1 : fromRevision;

    const buffer: WatchEvent[] = [];
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    /** Every event with a revision below this has been received (buffered). */
    let next = start;
    let stream: Awaited<ReturnType<Etcd3["watchClient"]["watch"]>> | undefined;
    let disconnectedAt: number | undefined;
    let reconnectTimer: NodeJS.Timeout | undefined;
    let ended = false;

    const notify = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const state: WatchState = {
      fail: (e) => {
        failure ??= e;
        notify();
      },
    };
    const dropStream = (): void => {
      const s = stream;
      stream = undefined;
      if (s === undefined) return;
      (s as unknown as NodeJS.EventEmitter).removeAllListeners();
      // A late error from the cancelled stream must not become an unhandled 'error'.
      s.on("error", () => undefined);
      s.cancel();
    };
    const broken = (err: unknown): void => {
      dropStream();
      if (ended || failure !== undefined || this.closed) return;
      const now = Date.now();
      disconnectedAt ??= now;
      if (now - disconnectedAt >= this.watchReconnectMs) {
        state.fail(
          new UnavailableError(
            `etcd at ${this.endpointsText} is unreachable: the watch of ${JSON.stringify(prefix)} lost its stream at revision ${next} ` +
              `and could not re-establish it within ${this.watchReconnectMs} ms (${err instanceof Error ? err.message : String(err)}); re-read and watch again`,
            { cause: err },
          ),
        );
        return;
      }
      this.opts.logger?.warn("etcd watch stream broke; re-creating it", { prefix, revision: next, err });
      reconnectTimer = setTimeout(() => {
        reconnectTimer = undefined;
        connect();
      }, RECONNECT_DELAY_MS);
    };
    const connect = (): void => {
      if (ended || failure !== undefined || this.closed) return;
      this.client.watchClient.watch().then(
        (s) => {
          if (ended || failure !== undefined) {
            s.on("error", () => undefined);
            s.cancel();
            return;
          }
          stream = s;
          s.on("data", (res) => {
            if (res.created && !res.canceled) {
              disconnectedAt = undefined;
              return;
            }
            if (res.canceled) {
              const compact = Number(res.compact_revision);
              dropStream();
              state.fail(
                compact > 0
                  ? new WatchCompactedError(next, compact)
                  : new UnavailableError(`etcd at ${this.endpointsText} cancelled the watch of ${JSON.stringify(prefix)}: ${res.cancel_reason || "no reason given"}`),
              );
              return;
            }
            if (res.events.length === 0) return;
            // One response is always taken into an empty buffer (etcd sends at most 1000
            // revisions per response when catching up), so the bound is the larger of the two.
            if (buffer.length > 0 && buffer.length + res.events.length > this.watchBufferEvents) {
              dropStream();
              state.fail(new WatchOverflowError(buffer.length));
              return;
            }
            for (const ev of res.events) {
              const kv = ev.kv;
              const rev = Number(kv.mod_revision);
              buffer.push(ev.type === "Delete" ? { type: "delete", key: utf8.decode(kv.key), revision: rev } : { type: "put", kv: toKv(kv) });
              // etcd sends whole revisions in one response, so everything below rev + 1 is here.
              next = rev + 1;
            }
            notify();
          });
          s.on("error", (err: Error) => broken(err));
          s.on("end", () => broken(new Error("watch stream ended")));
          s.write({ create_request: { key, range_end: rangeEnd, start_revision: next } });
        },
        (err: unknown) => broken(err),
      );
    };

    const onAbort = (): void => notify();
    signal.addEventListener("abort", onAbort);
    this.watches.add(state);
    try {
      connect();
      for (;;) {
        if (signal.aborted) throw abortReason(signal);
        const e = buffer.shift();
        if (e !== undefined) {
          yield e;
          continue;
        }
        // Buffered events first, then the failure: the consumer resumes after the last one.
        if (failure !== undefined) throw failure;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      ended = true;
      if (reconnectTimer !== undefined) clearTimeout(reconnectTimer);
      dropStream();
      signal.removeEventListener("abort", onAbort);
      this.watches.delete(state);
    }
  }

  // ---------------------------------------------------------------------------------
  // Leases

  async grantLease(ttlMs: number, options: CallOptions = {}): Promise<LeaseId> {
    this.open();
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > this.maxLeaseTtlMs) {
      throw new InvalidArgumentError(`lease ttl ${ttlMs} ms: must be an integer in [1, ${this.maxLeaseTtlMs}]`);
    }
    if (options.signal?.aborted === true) throw abortReason(options.signal);
    const lease = this.client.lease(etcdLeaseTtlSeconds(ttlMs), { autoKeepAlive: false, deadline: Date.now() + this.callTimeoutMs });
    let id: LeaseId;
    try {
      id = await this.wait(options.signal, lease.grant());
    } catch (e) {
      lease.release();
      if (isAbortOf(options.signal, e)) throw e;
      throw this.translate("grantLease", e);
    }
    lease.on("lost", (err: Error) => {
      // Rule 10: from here on this lease is dead for us, whatever a later call might say.
      this.leases.delete(id);
      this.remember(this.lostLeases, id);
      this.opts.logger?.info("etcd lease lost", { lease: id, err });
    });
    this.leases.set(id, lease);
    if (this.leases.size > this.maxTrackedLeases) {
      const oldest = this.leases.keys().next().value;
      if (oldest !== undefined) {
        this.leases.get(oldest)?.release();
        this.leases.delete(oldest);
      }
    }
    return id;
  }

  async keepAlive(lease: LeaseId, options: CallOptions = {}): Promise<boolean> {
    this.open();
    const id = this.checkLeaseId(lease);
    if (this.lostLeases.has(id)) return false;
    const tracked = this.leases.get(id);
    if (tracked !== undefined) {
      try {
        await this.wait(options.signal, tracked.keepaliveOnce({ deadline: Date.now() + this.callTimeoutMs }));
        return true;
      } catch (e) {
        // keepaliveOnce emitted `lost` (handled above) when etcd said the lease is gone.
        if (e instanceof EtcdLeaseInvalidError) return false;
        throw this.translate("keepAlive", e);
      }
    }
    const res = await this.call("keepAlive", options, async (o) => {
      const stream = await this.client.leaseClient.leaseKeepAlive(o);
      try {
        return await new Promise<{ TTL: string }>((resolve, reject) => {
          stream.on("data", resolve);
          stream.on("error", reject);
          stream.on("end", () => reject(new Error("keep-alive stream ended without an answer")));
          stream.write({ ID: id });
        });
      } finally {
        stream.on("error", () => undefined);
        stream.end();
      }
    });
    if (res.TTL === "0") {
      this.remember(this.lostLeases, id);
      return false;
    }
    return true;
  }

  async revoke(lease: LeaseId, options: CallOptions = {}): Promise<boolean> {
    this.open();
    const id = this.checkLeaseId(lease);
    const tracked = this.leases.get(id);
    try {
      await this.call("revoke", options, (o) => this.client.leaseClient.leaseRevoke({ ID: id }, o));
      return true;
    } catch (e) {
      if (e instanceof EtcdLeaseInvalidError) return false;
      throw e;
    } finally {
      // Revoked (or already gone): either way it is no longer alive.
      if (tracked !== undefined) {
        this.leases.delete(id);
        tracked.release();
      }
      this.remember(this.lostLeases, id);
    }
  }

  /** Ends running watches (UnavailableError) and the connection. Leases are not revoked: they expire. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const w of [...this.watches]) w.fail(new UnavailableError("the meta store is closed"));
    for (const l of this.leases.values()) l.release();
    this.leases.clear();
    this.client.close();
    return Promise.resolve();
  }

  // ---------------------------------------------------------------------------------
  // Internals

  private open(): void {
    if (this.closed) throw new UnavailableError("the meta store is closed");
  }

  private checkLeaseId(lease: LeaseId): LeaseId {
    if (typeof lease !== "string" || !LEASE_ID.test(lease)) throw new InvalidArgumentError(`lease id ${JSON.stringify(lease)} is malformed`);
    return lease;
  }

  private remember(set: Set<LeaseId>, id: LeaseId): void {
    set.add(id);
    if (set.size > this.maxTrackedLeases) {
      const oldest = set.values().next().value;
      if (oldest !== undefined) set.delete(oldest);
    }
  }

  private prefixRange(prefix: string): { key: Buffer; rangeEnd: Buffer } {
    if (typeof prefix !== "string") throw new InvalidArgumentError("prefix: must be a string");
    if (prefix === "") return { key: ALL_KEYS, rangeEnd: ALL_KEYS };
    const key = encodeKey(prefix, "prefix");
    const end = prefixEnd(key);
    return { key, rangeEnd: end === undefined ? ALL_KEYS : Buffer.from(end) };
  }

  /** One etcd round trip with a deadline, abortable, errors translated. */
  private async call<T>(what: string, options: CallOptions, fn: (o: { deadline: Date }) => Promise<T>): Promise<T> {
    this.open();
    try {
      return await this.wait(options.signal, fn({ deadline: new Date(Date.now() + this.callTimeoutMs) }));
    } catch (e) {
      if (isAbortOf(options.signal, e)) throw e;
      throw this.translate(what, e);
    }
  }

  /** Races `p` against the signal; an abort rejects with its reason (the RPC ends at its deadline). */
  private wait<T>(signal: AbortSignal | undefined, p: Promise<T>): Promise<T> {
    return raceSignal(p, signal);
  }

  private translate(what: string, e: unknown): unknown {
    if (isVecraftError(e) || e instanceof EtcdLeaseInvalidError) return e;
    if (e instanceof DOMException && e.name === "AbortError") return e;
    if (this.closed) return new UnavailableError("the meta store is closed", { cause: e });
    if (isUnreachable(e)) {
      const msg = e instanceof Error ? e.message : String(e);
      return new UnavailableError(`etcd at ${this.endpointsText} is unreachable: ${what}: ${msg}`, { cause: e });
    }
    return e;
  }
}
