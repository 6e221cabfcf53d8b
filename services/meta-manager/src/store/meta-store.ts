// The MetaStore: the small versioned key-value store the catalog and the cluster map live
// in. Its shape is etcd's (revisions, compare-and-swap transactions, watches from a
// revision, leases) so that two implementations pass one contract suite: the embedded
// SQLite store (standalone mode) and an etcd store (cluster mode).
//
// Semantics every implementation keeps (test/meta-store-contract.ts checks them):
// - The store has one revision counter. A committed transaction that changes at least
//   one key increments it once; every key it changes gets that revision as its
//   `modRevision`. Reads, failed compares and no-op transactions do not move it.
// - A key keeps its `createRevision` across updates; a delete followed by a put starts
//   a new incarnation (new `createRevision`, `version` 1).
// - `watch(prefix, from)` yields every change to a key under `prefix` with revision >=
//   `from`, in revision order (and, within a revision, in the transaction's order),
//   exactly once, with no gaps. It never silently drops an event: when it cannot keep
//   that promise it fails with `WatchCompactedError` or `WatchOverflowError`, and the
//   consumer re-reads with `range` and watches again from the revision that returned.
// - Keys attached to a lease are deleted (with delete events, in one revision per lease)
//   when the lease expires or is revoked.
import { NotFoundError, OutOfRangeError, ResourceExhaustedError, type VecraftErrorOptions } from "@vecraft/common";

/** A lease id: a decimal string, as etcd clients spell int64 ids. */
export type LeaseId = string;

export interface KeyValue {
  readonly key: string;
  readonly value: Uint8Array;
  /** The revision of the transaction that created this incarnation of the key. */
  readonly createRevision: number;
  /** The revision of the transaction that last changed it. */
  readonly modRevision: number;
  /** Puts since it was created, from 1. */
  readonly version: number;
  /** The lease it is attached to, if any. */
  readonly lease: LeaseId | undefined;
}

export interface RangeResult {
  /** Keys in ascending byte order (UTF-8), all read at `revision`. */
  readonly kvs: readonly KeyValue[];
  /** The store's revision when the range was read: watch from `revision + 1` to follow it. */
  readonly revision: number;
  /** True when `limit` cut the result short. */
  readonly more: boolean;
}

export interface TxnCompare {
  readonly key: string;
  /** The key's expected `modRevision`; 0 means "the key must not exist". */
  readonly modRevision: number;
}

export interface TxnPut {
  readonly key: string;
  readonly value: Uint8Array;
  /** Attach the key to this lease (it must exist); absent detaches it from any lease. */
  readonly lease?: LeaseId;
}

export interface TxnRequest {
  /** All must hold for the transaction to commit. */
  readonly compares?: readonly TxnCompare[];
  /** Applied in order if the compares hold. A key may appear once across puts and deletes. */
  readonly puts?: readonly TxnPut[];
  /** Exact keys to delete if the compares hold; a missing key is not an error. */
  readonly deletes?: readonly string[];
}

export interface TxnResult {
  /** False when a compare failed: nothing was written. */
  readonly committed: boolean;
  /** The store's revision after the transaction (unchanged when nothing was written). */
  readonly revision: number;
}

export type WatchEvent = { readonly type: "put"; readonly kv: KeyValue } | { readonly type: "delete"; readonly key: string; readonly revision: number };

/** The revision of the change an event reports. */
export function eventRevision(e: WatchEvent): number {
  return e.type === "put" ? e.kv.modRevision : e.revision;
}

export interface CallOptions {
  /** Aborts the wait for the store (network round trips for etcd). */
  readonly signal?: AbortSignal;
}

export interface RangeOptions extends CallOptions {
  /** Most keys returned; 0 or absent means no limit. */
  readonly limit?: number;
}

/**
 * A versioned key-value store with compare-and-swap transactions, watches and leases.
 * Keys are non-empty UTF-8 strings, compared as bytes; values are bytes.
 */
export interface MetaStore {
  /** The key's current value, or undefined. */
  get(key: string, options?: CallOptions): Promise<KeyValue | undefined>;

  /** Every key starting with `prefix` ("" means all keys), at one revision. */
  range(prefix: string, options?: RangeOptions): Promise<RangeResult>;

  /** Atomically: if every compare holds, apply the puts and deletes. */
  txn(request: TxnRequest, options?: CallOptions): Promise<TxnResult>;

  /** The store's current revision (0 for a store that was never written). */
  revision(options?: CallOptions): Promise<number>;

  /**
   * The changes under `prefix` with revision >= `fromRevision` (0: only changes after
   * the call), as a pull-based iterator: the store reads or buffers the next events only
   * as the consumer takes them, and at most a bounded number of them (see the overflow
   * policy in the file header). Ends by throwing `signal.reason` when `signal` aborts;
   * breaking out of the loop also releases it. Fails with `WatchCompactedError` when
   * `fromRevision` (or the consumer's position) falls behind the retained history, and
   * with `WatchOverflowError` when a push-based implementation's buffer fills.
   */
  watch(prefix: string, fromRevision: number, signal: AbortSignal): AsyncIterable<WatchEvent>;

  /** A new lease that expires `ttlMs` after its grant or its last keep-alive. */
  grantLease(ttlMs: number, options?: CallOptions): Promise<LeaseId>;

  /** Restarts the lease's time to live. False when it has expired or never existed. */
  keepAlive(lease: LeaseId, options?: CallOptions): Promise<boolean>;

  /** Ends the lease now, deleting its keys. False when it had already expired or never existed. */
  revoke(lease: LeaseId, options?: CallOptions): Promise<boolean>;

  /** Releases the store. Running watches end (their iterators throw or return). */
  close(): Promise<void>;
}

/** Bound on a key's length in UTF-8 bytes (etcd's limit is larger; ours keeps rows small). */
export const MAX_KEY_BYTES = 1024;
/** Bound on a value's size (etcd's default request limit is 1.5 MiB). */
export const MAX_VALUE_BYTES = 1024 * 1024;

/**
 * The watch asked for changes the store no longer keeps (older than `compactRevision`).
 * Re-read with `range` and watch again from the revision it returns.
 */
export class WatchCompactedError extends OutOfRangeError {
  override name = "WatchCompactedError";
  constructor(
    readonly requestedRevision: number,
    readonly compactRevision: number,
    options?: VecraftErrorOptions,
  ) {
    super(`watch from revision ${requestedRevision}: changes up to revision ${compactRevision} have been compacted; re-read and watch from a later revision`, {
      ...options,
      details: { compactRevision },
    });
  }
}

/**
 * A push-based watch (etcd) received events faster than its consumer took them and its
 * bounded buffer filled. The watch ends rather than block the store's event stream or
 * drop events; re-read with `range` and watch again. Retryable.
 */
export class WatchOverflowError extends ResourceExhaustedError {
  override name = "WatchOverflowError";
  constructor(
    readonly bufferedEvents: number,
    options?: VecraftErrorOptions,
  ) {
    super(`watch buffer full (${bufferedEvents} events not taken by the consumer); re-read and watch again`, options);
  }
}

/** A put named a lease that does not exist (expired, revoked or never granted). */
export class LeaseNotFoundError extends NotFoundError {
  override name = "LeaseNotFoundError";
  constructor(
    readonly lease: LeaseId,
    options?: VecraftErrorOptions,
  ) {
    super(`lease ${lease} not found (expired or revoked)`, options);
  }
}

/** The smallest string greater than every string starting with `prefix`, in UTF-8 byte order, or undefined for "no bound". */
export function prefixEnd(prefix: Uint8Array): Uint8Array | undefined {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return undefined;
}
