// RPC clients of other Vecraft processes, one per address: the query processor's storage
// clients, a storage node's peers (snapshots), the meta-manager's calls to journals and
// storage nodes. Bounded two ways: `max` drops the least recently used client, and
// `retain` drops the clients of addresses that left the catalog. `forget` drops one whose
// connection broke so the next call dials afresh. connect-node's transports have no
// close: a dropped client's HTTP/2 session closes by itself once idle.
import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { internalGrpcTransport, type InternalTransportOptions } from "./transport.js";

export interface ClientPoolOptions<S extends DescService> {
  /** Most clients kept (least recently used dropped first); default unbounded (use `retain`). */
  readonly max?: number;
  /** Transport settings of every client (pings, idle timeout). */
  readonly transport?: Omit<InternalTransportOptions, "baseUrl">;
  /** Makes the client of an address instead (tests). */
  readonly make?: (address: string) => Client<S>;
}

export class ClientPool<S extends DescService> {
  readonly #clients = new Map<string, Client<S>>();

  constructor(
    private readonly service: S,
    private readonly options: ClientPoolOptions<S> = {},
  ) {}

  /** The client of the process at `address` (a base URL). */
  get(address: string): Client<S> {
    let c = this.#clients.get(address);
    if (c !== undefined) {
      // Most recently used last: Map keeps insertion order.
      this.#clients.delete(address);
    } else {
      c = this.options.make?.(address) ?? createClient(this.service, internalGrpcTransport({ ...this.options.transport, baseUrl: address }));
      const max = this.options.max;
      if (max !== undefined && this.#clients.size >= max) {
        const oldest = this.#clients.keys().next();
        if (!oldest.done) this.#clients.delete(oldest.value);
      }
    }
    this.#clients.set(address, c);
    return c;
  }

  /** Drops the client of `address` (its connection broke: the next call dials again). */
  forget(address: string): void {
    this.#clients.delete(address);
  }

  /** Drops the clients of every address not in `addresses`. */
  retain(addresses: Iterable<string>): void {
    const keep = new Set(addresses);
    for (const a of [...this.#clients.keys()]) if (!keep.has(a)) this.#clients.delete(a);
  }

  get size(): number {
    return this.#clients.size;
  }
}
