// Which node to call first among several that can serve a request (the replicas of a
// shard for a query processor, the query processors for a gateway): a memory of recent
// failures per node, and the order derived from it and from the catalog.
//
// A node that just failed (connection refused or reset, UNAVAILABLE while bootstrapping,
// a read target it could not reach in time) is put last for a cool-down that doubles with
// each consecutive failure, up to a cap; one success forgets it. Healthy nodes are
// rotated so load spreads across them. Nodes the catalog no longer lists as alive are
// skipped, unless none is left: the catalog may be stale (the meta-manager away), and
// trying a listed node costs little next to failing the request outright.
import { ConnectError } from "@connectrpc/connect";
import type { RegisteredNode } from "@vecraft/rpc";

export interface HealthOptions {
  /** Cool-down after the first failure in a row (doubled per further failure). */
  readonly baseCooldownMs: number;
  /** Longest cool-down. */
  readonly maxCooldownMs: number;
  /** Milliseconds, monotonic. */
  readonly now: () => number;
}

interface FailureRecord {
  failures: number;
  until: number;
}

export const DEFAULT_HEALTH: HealthOptions = { baseCooldownMs: 1_000, maxCooldownMs: 30_000, now: () => performance.now() };

/** Recent failures per node id (bounded by the nodes registered in the catalog). */
export class NodeHealth {
  readonly #records = new Map<string, FailureRecord>();

  constructor(private readonly opts: HealthOptions = DEFAULT_HEALTH) {}

  failed(node: string): void {
    const r = this.#records.get(node) ?? { failures: 0, until: 0 };
    r.failures++;
    const cooldown = Math.min(this.opts.maxCooldownMs, this.opts.baseCooldownMs * 2 ** Math.min(30, r.failures - 1));
    r.until = this.opts.now() + cooldown;
    this.#records.set(node, r);
  }

  succeeded(node: string): void {
    this.#records.delete(node);
  }

  /** Whether `node` is out of its cool-down (or never failed). */
  healthy(node: string): boolean {
    const r = this.#records.get(node);
    return r === undefined || this.opts.now() >= r.until;
  }

  /** Failures in a row of `node` (0 when healthy by success). */
  failures(node: string): number {
    return this.#records.get(node)?.failures ?? 0;
  }

  /** Forgets nodes that left the catalog. */
  retain(ids: ReadonlySet<string>): void {
    for (const id of [...this.#records.keys()]) if (!ids.has(id)) this.#records.delete(id);
  }

  /**
   * The order to try `ids` in: the alive registered ones (all registered ones if none is
   * alive), healthy first rotated by `turn`, then those cooling down, soonest to recover
   * first. Unregistered nodes (no address) are left out.
   */
  order(ids: readonly string[], nodeOf: (id: string) => RegisteredNode | undefined, turn: number): { node: string; address: string }[] {
    const registered: { node: string; address: string; alive: boolean }[] = [];
    for (const node of ids) {
      const n = nodeOf(node);
      if (n !== undefined && n.address !== "") registered.push({ node, address: n.address, alive: n.alive });
    }
    const alive = registered.filter((r) => r.alive);
    const pool = alive.length > 0 ? alive : registered;
    const healthy = pool.filter((r) => this.healthy(r.node));
    const cooling = pool.filter((r) => !this.healthy(r.node)).sort((a, b) => this.#until(a.node) - this.#until(b.node));
    const start = healthy.length === 0 ? 0 : turn % healthy.length;
    const rotated = [...healthy.slice(start), ...healthy.slice(0, start)];
    return [...rotated, ...cooling].map(({ node, address }) => ({ node, address }));
  }

  #until(node: string): number {
    return this.#records.get(node)?.until ?? 0;
  }
}

/**
 * Whether a call failed on our side of the connection (refused, reset, the HTTP/2 session
 * or stream torn down) rather than with the server's answer. Such a connection is not
 * worth reusing, and the node may be gone.
 */
export function isConnectionFailure(e: ConnectError): boolean {
  if (/^http\/2 (stream|connection) closed/.test(e.rawMessage)) return true;
  const seen = new Set<unknown>();
  for (let c: unknown = e.cause; c instanceof Error && !seen.has(c); c = c.cause) {
    seen.add(c);
    if (!(c instanceof ConnectError) && "code" in c && typeof c.code === "string") return true;
  }
  return false;
}
