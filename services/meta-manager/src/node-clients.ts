// RPC clients of the cluster's nodes, one per address, for the controllers that ask nodes
// what they hold (the journal partition map asks journal nodes, the failover controller
// asks storage nodes). Each pass keeps only the addresses of the nodes it asked (`retain`),
// so the cache is bounded by the registered nodes (max-nodes); a dropped client's HTTP/2
// session closes by itself once idle.
import { createClient, type Client } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { internalGrpcTransport } from "@vecraft/meta-client";

export class NodeClients<S extends DescService> {
  private readonly clients = new Map<string, Client<S>>();

  /** `make`: the client of the node at an address (tests); default: gRPC over `internalGrpcTransport`. */
  constructor(
    private readonly service: S,
    private readonly make?: (address: string) => Client<S>,
  ) {}

  get(address: string): Client<S> {
    let c = this.clients.get(address);
    if (c === undefined) {
      c = this.make?.(address) ?? createClient(this.service, internalGrpcTransport({ baseUrl: address, idleConnectionTimeoutMs: 60_000 }));
      this.clients.set(address, c);
    }
    return c;
  }

  /** Drops the clients of every address not in `addresses`. */
  retain(addresses: Iterable<string>): void {
    const keep = new Set(addresses);
    for (const a of [...this.clients.keys()]) if (!keep.has(a)) this.clients.delete(a);
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
