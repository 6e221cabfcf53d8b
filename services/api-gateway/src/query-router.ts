// Which query processor serves a read: the alive QUERY_PROCESSOR nodes of the catalog
// (the registered ones if none is alive), rotated (NodeHealth: one that just failed is
// tried last for a cool-down), and --query-url when the catalog lists none (standalone
// before the processor registered, or processors run without a meta-manager).
//
// It is a Connect Transport, so the reads code keeps a plain QueryService client. A call
// that fails with UNAVAILABLE or on the connection (refused, reset: the processor died or
// is restarting) is retried on the next processor within the same deadline (QueryService
// methods are reads, so a retry can do no harm); a shard that no replica could answer is
// not (another processor would ask the same replicas).
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import type { DescMessage, DescMethodStreaming, DescMethodUnary, MessageInitShape } from "@bufbuild/protobuf";
import type { ContextValues, StreamResponse, UnaryResponse } from "@connectrpc/connect";
import { errorDetailsOf, type Logger } from "@vecraft/common";
import { NodeHealth, isConnectionFailure, type HealthOptions } from "@vecraft/meta-client";
import { NodeRole } from "@vecraft/rpc";
import type { CatalogCache } from "./catalog.js";
import type { GatewayMetrics } from "./metrics.js";

/** What Transport takes as request headers (HeadersInit, without the DOM lib). */
type HeaderInit = ConstructorParameters<typeof Headers>[0];

export interface QueryRouterOptions {
  /** The query processor to use when the catalog lists none. */
  readonly fallbackUrl: string;
  /** A transport per processor URL (kept for the process's life, one per URL). */
  readonly transportFor: (url: string) => Transport;
  /** Most processors one call tries. */
  readonly maxAttempts?: number;
  readonly health?: HealthOptions;
}

/**
 * UNAVAILABLE from the processor itself (starting, no catalog yet), not its report that
 * a shard had no replica to answer (the `vecraft-shard` detail): another processor would
 * ask the same replicas.
 */
function processorUnavailable(e: ConnectError): boolean {
  return e.code === Code.Unavailable && errorDetailsOf(e)["shard"] === undefined;
}

export class QueryRouter implements Transport {
  readonly #health: NodeHealth;
  readonly #transports = new Map<string, Transport>();
  #turn = 0;

  constructor(
    private readonly catalog: CatalogCache,
    private readonly metrics: GatewayMetrics,
    private readonly logger: Logger,
    private readonly options: QueryRouterOptions,
  ) {
    this.#health = new NodeHealth(options.health);
    catalog.onChange((c) => {
      this.#health.retain(new Set(c.nodes.map((n) => n.id)));
      // Transports of processors that left the catalog are dropped (their sessions close when idle).
      const keep = new Set([options.fallbackUrl, ...c.nodes.map((n) => n.address)]);
      for (const url of [...this.#transports.keys()]) if (!keep.has(url)) this.#transports.delete(url);
    });
  }

  /** The processors to try, in order: `{ id, url }`, id "" for --query-url (always last). */
  targets(): { id: string; url: string }[] {
    // All registered processors: NodeHealth prefers the alive ones and falls back to the
    // others only when none is alive (a lease may lapse while the process still serves).
    const ids = (this.catalog.current?.nodes ?? []).filter((n) => n.roles.includes(NodeRole.QUERY_PROCESSOR)).map((n) => n.id);
    const ordered = this.#health.order(ids, (id) => this.catalog.node(id), this.#turn++);
    const targets = ordered.slice(0, this.options.maxAttempts ?? 3).map((t) => ({ id: t.node, url: t.address }));
    // --query-url last: the catalog may list only a stale address (a processor restarted on
    // another port and not registered again yet, as in standalone right after a restart).
    if (!targets.some((t) => t.url === this.options.fallbackUrl)) targets.push({ id: "", url: this.options.fallbackUrl });
    return targets;
  }

  async unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeaderInit,
    input: MessageInitShape<I>,
    contextValues?: ContextValues,
  ): Promise<UnaryResponse<I, O>> {
    const targets = this.targets();
    const started = performance.now();
    let last: ConnectError | undefined;
    for (let i = 0; i < targets.length; i++) {
      const { id, url } = targets[i] as { id: string; url: string };
      const left = timeoutMs === undefined ? undefined : Math.max(1, Math.floor(timeoutMs - (performance.now() - started)));
      try {
        const res = await this.#transport(url).unary(method, signal, left, header, input, contextValues);
        if (id !== "") this.#health.succeeded(id);
        return res;
      } catch (e) {
        const ce = ConnectError.from(e);
        const connection = isConnectionFailure(ce);
        if (signal?.aborted === true || !(connection || processorUnavailable(ce))) throw ce;
        if (id !== "") this.#health.failed(id);
        if (connection) this.#transports.delete(url);
        last = ce;
        if (i < targets.length - 1) {
          this.metrics.queryRetries.inc({ reason: connection ? "connection" : "unavailable" });
          this.logger.debug("query processor failed; trying another", { node: id, code: ce.code, message: ce.rawMessage });
        }
      }
    }
    throw last ?? new ConnectError("no query processor to call", Code.Unavailable);
  }

  /** QueryService has no streaming methods; a stream goes to the first processor, not retried. */
  stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodStreaming<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeaderInit,
    input: AsyncIterable<MessageInitShape<I>>,
    contextValues?: ContextValues,
  ): Promise<StreamResponse<I, O>> {
    const first = this.targets()[0] as { url: string };
    return this.#transport(first.url).stream(method, signal, timeoutMs, header, input, contextValues);
  }

  #transport(url: string): Transport {
    let t = this.#transports.get(url);
    if (t === undefined) {
      t = this.options.transportFor(url);
      this.#transports.set(url, t);
    }
    return t;
  }
}
