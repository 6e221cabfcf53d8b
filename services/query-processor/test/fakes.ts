// In-memory MetaService and JournalService for the query processor's tests: a fixed
// catalog (held open as a watch stream), registrations recorded, barriers answered.
import { createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { encode } from "@vecraft/hlc";
import { JournalService, MetaService, type Catalog, type RegisteredNode } from "@vecraft/rpc";

export const NOW_MS = 1_700_000_000_000;

export function fakeMeta(catalog: () => Catalog, registrations: RegisteredNode[] = []): Client<typeof MetaService> {
  return createClient(
    MetaService,
    createRouterTransport(({ service }) => {
      service(MetaService, {
        getCatalog: () => ({ catalog: catalog() }),
        async *watchCatalog(_req, ctx) {
          // No changes during a test: hold the stream open until the client leaves.
          await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
          yield* [];
        },
        registerNode(req) {
          if (req.node) registrations.push(req.node);
          return { leaseId: "1", ttlMs: req.ttlMs };
        },
        heartbeat: () => ({ alive: true }),
      });
    }),
  );
}

export function fakeJournal(barrierCalls: number[][] = []): Client<typeof JournalService> {
  return createClient(
    JournalService,
    createRouterTransport(({ service }) => {
      service(JournalService, {
        barrier(req) {
          barrierCalls.push([...req.partitions]);
          return { positions: req.partitions.map((p) => ({ partition: p, offset: BigInt(100 + p), ts: encode(NOW_MS + p, 0) })) };
        },
      });
    }),
  );
}
