// Keeps a process registered with the meta-manager: RegisterNode with a lease, then
// Heartbeat at a third of the TTL; a lost lease (expired, or revoked by a newer
// registration of the same id) means registering again. Failures are retried with
// backoff and jitter; the process keeps serving meanwhile (the data path does not depend
// on the registration, so an etcd outage does not stop reads and writes).
import type { Client } from "@connectrpc/connect";
import { abortableSleep, backoffDelays, type Logger } from "@vecraft/common";
import type { MetaService, NodeRole } from "@vecraft/rpc";

export interface Registration {
  /** Whether the last RegisterNode or Heartbeat succeeded. */
  readonly registered: boolean;
  stop(): Promise<void>;
}

const BACKOFF = { initialMs: 100, maxMs: 5000, multiplier: 2, jitter: 0.2 } as const;

export function keepRegistered(
  meta: Client<typeof MetaService>,
  node: { id: string; address: string; roles: NodeRole[] },
  ttlMs: number,
  logger: Logger,
): Registration {
  const ac = new AbortController();
  const signal = ac.signal;
  let registered = false;
  const pause = async (delays: ReturnType<typeof backoffDelays>, what: string, e: unknown): Promise<boolean> => {
    const wait = delays.next().value ?? BACKOFF.maxMs;
    logger.warn(`${what}; retrying`, { nodeId: node.id, err: e, retryInMs: wait });
    try {
      await abortableSleep(wait, signal);
      return true;
    } catch {
      // Aborted: stopping.
      return false;
    }
  };
  // One call may not spend the lease: a hung heartbeat gives way to the next try while
  // the lease still has two thirds of its life.
  const callTimeoutMs = Math.max(50, Math.floor(ttlMs / 3));
  const loop = (async () => {
    let delays = backoffDelays(BACKOFF);
    while (!signal.aborted) {
      let leaseId: string;
      try {
        ({ leaseId } = await meta.registerNode(
          { node: { id: node.id, address: node.address, roles: node.roles, alive: true }, ttlMs },
          { signal, timeoutMs: ttlMs },
        ));
      } catch (e) {
        registered = false;
        if (signal.aborted || !(await pause(delays, "meta-manager registration failed", e))) return;
        continue;
      }
      registered = true;
      logger.info("registered with the meta-manager", { nodeId: node.id, address: node.address });
      delays = backoffDelays(BACKOFF);
      // Heartbeat the same lease until it is reported gone. A failed heartbeat (the
      // meta-manager or etcd unreachable) is retried on the same lease: etcd keeps leases
      // across its restarts, so the registration usually survives an outage untouched.
      for (;;) {
        try {
          await abortableSleep(Math.max(50, Math.floor(ttlMs / 3)), signal);
        } catch {
          // Aborted: stopping.
          return;
        }
        let alive: boolean;
        try {
          ({ alive } = await meta.heartbeat({ leaseId }, { signal, timeoutMs: callTimeoutMs }));
        } catch (e) {
          registered = false;
          if (signal.aborted || !(await pause(delays, "heartbeat failed", e))) return;
          continue;
        }
        delays = backoffDelays(BACKOFF);
        if (!alive) {
          registered = false;
          logger.warn("registration lease lost; registering again", { nodeId: node.id });
          break;
        }
        registered = true;
      }
    }
  })();
  return {
    get registered() {
      return registered;
    },
    async stop() {
      ac.abort();
      await loop.catch(() => undefined);
    },
  };
}
