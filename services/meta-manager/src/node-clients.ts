// RPC clients of the cluster's nodes, one per address, for the controllers that ask nodes
// what they hold (the journal partition map asks journal nodes, the failover controller
// asks storage nodes). Each pass keeps only the addresses of the nodes it asked (`retain`),
// so the cache is bounded by the registered nodes (max-nodes); a dropped client's HTTP/2
// session closes by itself once idle.
import type { Client } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { ClientPool } from "@vecraft/meta-client";

export class NodeClients<S extends DescService> {
  private readonly pool: ClientPool<S>;

  /** `make`: the client of the node at an address (tests); default: gRPC over `internalGrpcTransport`. */
  constructor(service: S, make?: (address: string) => Client<S>) {
    this.pool = new ClientPool(service, { transport: { idleConnectionTimeoutMs: 60_000 }, ...(make ? { make } : {}) });
  }

  get(address: string): Client<S> {
    return this.pool.get(address);
  }

  /** Drops the clients of every address not in `addresses`. */
  retain(addresses: Iterable<string>): void {
    this.pool.retain(addresses);
  }

  /**
   * A read-only call to the node at `address`, tried a second time when the first fails
   * (unless aborted): the first call after a node restart can land on the old connection
   * as it closes (REFUSED_STREAM) while the node is already back.
   */
  async read<T>(address: string, call: (client: Client<S>) => Promise<T>, signal: AbortSignal): Promise<T> {
    const client = this.get(address);
    try {
      return await call(client);
    } catch (e) {
      if (signal.aborted) throw e;
      return call(client);
    }
  }
}
