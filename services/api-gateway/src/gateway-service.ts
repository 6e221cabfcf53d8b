// The VecraftService RPCs: a thin layer that turns the handler context into a Scope and
// delegates to the domain modules. No gateway logic lives here.
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { VecraftService } from "@vecraft/rpc";
import type { Audit } from "./audit.js";
import { clusterStatus, type ClusterDeps } from "./cluster.js";
import type { Collections } from "./collections.js";
import { kCaller } from "./context.js";
import type { Reader } from "./reads.js";
import { traceIdOf, type Scope } from "./scope.js";
import { watchChanges, type WatchDeps } from "./watch.js";
import type { Writer } from "./writes.js";

export interface GatewayParts {
  readonly collections: Collections;
  readonly writer: Writer;
  readonly reader: Reader;
  readonly audit: Audit;
  readonly watch: WatchDeps;
  readonly cluster: ClusterDeps;
}

export function scopeOf(ctx: HandlerContext): Scope {
  return {
    signal: ctx.signal,
    timeoutMs: () => ctx.timeoutMs(),
    caller: ctx.values.get(kCaller),
    traceId: traceIdOf(ctx.requestHeader),
  };
}

export function createGatewayServiceImpl(parts: GatewayParts): ServiceImpl<typeof VecraftService> {
  return {
    createCollection: (req, ctx) => parts.collections.create(req, scopeOf(ctx)),
    describeCollection: (req, ctx) => parts.collections.describe(req, scopeOf(ctx)),
    listCollections: (_req, ctx) => parts.collections.list(scopeOf(ctx)),
    async dropCollection(req, ctx) {
      await parts.collections.drop(req, scopeOf(ctx));
      return {};
    },
    upsert: (req, ctx) => parts.writer.upsert(req, scopeOf(ctx)),
    delete: (req, ctx) => parts.writer.delete(req, scopeOf(ctx)),
    search: (req, ctx) => parts.reader.search(req, scopeOf(ctx)),
    get: (req, ctx) => parts.reader.get(req, scopeOf(ctx)),
    query: (req, ctx) => parts.reader.query(req, scopeOf(ctx)),
    getRecordHistory: (req, ctx) => parts.audit.recordHistory(req, scopeOf(ctx)),
    getRequestLineage: (req, ctx) => parts.audit.requestLineage(req, scopeOf(ctx)),
    listOperations: (req, ctx) => parts.audit.listOperations(req, scopeOf(ctx)),
    watchChanges: (req, ctx) => watchChanges(parts.watch, req, scopeOf(ctx)),
    getClusterStatus: (_req, ctx) => clusterStatus(parts.cluster, scopeOf(ctx)),
  };
}
