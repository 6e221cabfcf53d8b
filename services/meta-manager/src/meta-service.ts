// The MetaService RPCs: a thin layer that checks request shapes, converts between proto
// messages and domain values, and delegates to the Catalog. No catalog logic lives here.
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { InvalidArgumentError } from "@vecraft/common";
import type { MetaService } from "@vecraft/rpc";
import type { Catalog } from "./catalog.js";

export function createMetaServiceImpl(catalog: Catalog): ServiceImpl<typeof MetaService> {
  return {
    async createCollection(req, ctx) {
      if (req.collection === undefined) throw new InvalidArgumentError("collection: required");
      const out = await catalog.createCollection(req.collection, { requestId: req.requestId, principal: req.principal }, ctx.signal);
      return { collection: out.collection, revision: BigInt(out.revision) };
    },

    async dropCollection(req, ctx) {
      const out = await catalog.dropCollection(req.name, { requestId: req.requestId, principal: req.principal }, ctx.signal);
      return { collection: out.collection, revision: BigInt(out.revision) };
    },

    async getCatalog(_req, ctx) {
      return { catalog: await catalog.getCatalog(ctx.signal) };
    },

    async *watchCatalog(req, ctx: HandlerContext) {
      for await (const c of catalog.watch(req.afterRevision, ctx.signal)) yield { catalog: c };
    },

    async registerNode(req, ctx) {
      if (req.node === undefined) throw new InvalidArgumentError("node: required");
      const { leaseId } = await catalog.registerNode({ id: req.node.id, roles: req.node.roles, address: req.node.address }, req.ttlMs, ctx.signal);
      return { leaseId };
    },

    async heartbeat(req, ctx) {
      return { alive: await catalog.heartbeat(req.leaseId, ctx.signal) };
    },
  };
}
