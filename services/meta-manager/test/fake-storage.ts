// A fake of the storage nodes' StorageService.GetStorageStatus, for the failover
// controller (which asks them which replicas serve): a node reports every replica the
// catalog lists on it, SERVING unless a test set another state for it, with the catalog's
// uid unless a test set another; a node in `down` fails the call like an unreachable one. Nodes are found by their registered address.
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { ReplicaState, StorageService, type Catalog as CatalogMessage } from "@vecraft/rpc";

export class FakeStorage {
  private readonly states = new Map<string, ReplicaState>();
  private readonly uids = new Map<string, string>();
  /** Node ids whose status calls fail with UNAVAILABLE. */
  readonly down = new Set<string>();
  /** GetStorageStatus calls answered or failed, by node id. */
  readonly calls = new Map<string, number>();

  /** The current catalog (what the nodes host); set once the meta-manager runs. */
  catalog: () => Promise<CatalogMessage> = () => Promise.reject(new Error("FakeStorage.catalog is not set"));

  /** The state `node` reports for its replica of `collection`/`shard` (default SERVING). */
  set(node: string, collection: string, shard: number, state: ReplicaState): void {
    this.states.set(`${node}/${collection}/${shard}`, state);
  }

  /** The incarnation uid `node` reports for its replica of `collection`/`shard` (default the catalog's; "" as an older node). */
  setUid(node: string, collection: string, shard: number, uid: string): void {
    this.uids.set(`${node}/${collection}/${shard}`, uid);
  }

  readonly client = (address: string): Client<typeof StorageService> =>
    createClient(
      StorageService,
      createRouterTransport(({ service }) => {
        service(StorageService, {
          getStorageStatus: async () => {
            const c = await this.catalog();
            const node = c.nodes.find((n) => n.address === address)?.id ?? "";
            this.calls.set(node, (this.calls.get(node) ?? 0) + 1);
            if (node === "" || this.down.has(node)) throw new ConnectError(`${address} is unreachable (injected)`, Code.Unavailable);
            const shards = [...c.collections, ...c.pendingCollections].flatMap((col) =>
              col.shards
                .filter((s) => s.replicas.includes(node))
                .map((s) => {
                  const collection = col.collection?.name ?? "";
                  const key = `${node}/${collection}/${s.shard}`;
                  return { collection, shard: s.shard, uid: this.uids.get(key) ?? col.uid, state: this.states.get(key) ?? ReplicaState.SERVING };
                }),
            );
            return { node, shards };
          },
        });
      }),
    );
}
