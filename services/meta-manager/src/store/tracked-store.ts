// A MetaStore wrapper that notices when the store is unreachable, for two readers:
//
// - Callers get one clear error. An unreachable store (etcd down or cut off) fails every
//   call with StoreUnreachableError (UNAVAILABLE) saying that the metadata store is
//   unreachable and that data reads and writes on the existing topology keep working:
//   only topology changes (collections, node registrations and leases) need the store.
// - The failover controller learns when the store last came back. While the store is
//   unreachable, nodes cannot renew their leases through the meta-manager; a lease that
//   expired meanwhile says nothing about the node, so the controller waits a lease TTL
//   after recovery before it treats any node as dead (see failover.ts).
//
// Only UnavailableError counts as "unreachable": bad input, lost compares, missing leases
// and aborts pass through untouched.
import { UnavailableError, type VecraftErrorOptions } from "@vecraft/common";
import type { Clock } from "./clock.js";
import type { CallOptions, KeyValue, LeaseId, MetaStore, RangeOptions, RangeResult, TxnRequest, TxnResult, WatchEvent } from "./meta-store.js";

/** The metadata store could not be reached; only topology changes are affected. Retryable. */
export class StoreUnreachableError extends UnavailableError {
  override name = "StoreUnreachableError";
  constructor(store: string, cause: unknown, options?: VecraftErrorOptions) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(
      `the metadata store (${store}) is unreachable, so the cluster topology cannot change now ` +
        `(collections cannot be created or dropped, nodes cannot register or renew leases); ` +
        `data reads and writes on the existing topology keep working; retry once it is back (${why})`,
      { ...options, cause },
    );
  }
}

/** What the wrapper saw of the store's reachability. */
export interface StoreHealth {
  /** False from a failed call until a call started after it succeeds. */
  readonly reachable: boolean;
  /** Clock time of the last recovery (a success after a failure); undefined if the store never failed. */
  readonly recoveredAtMs: number | undefined;
  /** Outages seen (failure after success). */
  readonly outages: number;
}

export interface TrackedStoreOptions {
  /** What the store is, for messages: "etcd at http://127.0.0.1:2379". */
  readonly describe: string;
  readonly clock: Clock;
  /** Called when the store becomes unreachable (true) or reachable again (false). */
  readonly onChange?: (reachable: boolean) => void;
}

export class TrackedMetaStore implements MetaStore {
  private failures = 0;
  private down = false;
  private recoveredAt: number | undefined;
  private outageCount = 0;

  constructor(
    readonly inner: MetaStore,
    private readonly opts: TrackedStoreOptions,
  ) {}

  get health(): StoreHealth {
    return { reachable: !this.down, recoveredAtMs: this.recoveredAt, outages: this.outageCount };
  }

  get description(): string {
    return this.opts.describe;
  }

  get(key: string, options?: CallOptions): Promise<KeyValue | undefined> {
    return this.track(() => this.inner.get(key, options), options?.signal);
  }

  range(prefix: string, options?: RangeOptions): Promise<RangeResult> {
    return this.track(() => this.inner.range(prefix, options), options?.signal);
  }

  txn(request: TxnRequest, options?: CallOptions): Promise<TxnResult> {
    return this.track(() => this.inner.txn(request, options), options?.signal);
  }

  revision(options?: CallOptions): Promise<number> {
    return this.track(() => this.inner.revision(options), options?.signal);
  }

  async *watch(prefix: string, fromRevision: number, signal: AbortSignal): AsyncGenerator<WatchEvent> {
    try {
      for await (const e of this.inner.watch(prefix, fromRevision, signal)) yield e;
    } catch (e) {
      throw this.failed(e, signal);
    }
  }

  grantLease(ttlMs: number, options?: CallOptions): Promise<LeaseId> {
    return this.track(() => this.inner.grantLease(ttlMs, options), options?.signal);
  }

  keepAlive(lease: LeaseId, options?: CallOptions): Promise<boolean> {
    return this.track(() => this.inner.keepAlive(lease, options), options?.signal);
  }

  revoke(lease: LeaseId, options?: CallOptions): Promise<boolean> {
    return this.track(() => this.inner.revoke(lease, options), options?.signal);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async track<T>(call: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    const before = this.failures;
    let v: T;
    try {
      v = await call();
    } catch (e) {
      throw this.failed(e, signal);
    }
    // A call that started before the last failure proves nothing about now.
    if (this.down && before === this.failures) {
      this.down = false;
      this.recoveredAt = this.opts.clock.now();
      this.opts.onChange?.(true);
    }
    return v;
  }

  private failed(e: unknown, signal: AbortSignal | undefined): unknown {
    // An aborted call failed because its caller gave up (the abort reason may itself be an
    // UnavailableError, e.g. "shutting down"), which says nothing about the store.
    if (!(e instanceof UnavailableError) || signal?.aborted === true) return e;
    this.failures++;
    if (!this.down) {
      this.down = true;
      this.outageCount++;
      this.opts.onChange?.(false);
    }
    return e instanceof StoreUnreachableError ? e : new StoreUnreachableError(this.opts.describe, e);
  }
}
