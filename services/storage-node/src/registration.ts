// Keeps this node registered with the meta-manager: RegisterNode with a lease, then
// Heartbeat at a third of the TTL; a lost lease (expired, or the meta-manager restarted)
// means registering again. Failures are retried with backoff and jitter; the node keeps
// serving meanwhile (reads do not depend on the registration).
import type { Client } from "@connectrpc/connect";
import { abortableSleep, backoffDelays, type Logger } from "@vecraft/common";
import type { NodeRole} from "@vecraft/rpc";
import { type MetaService } from "@vecraft/rpc";

export interface Registration {
  stop(): Promise<void>;
}

export function keepRegistered(
  meta: Client<typeof MetaService>,
  node: { id: string; address: string; roles: NodeRole[] },
  ttlMs: number,
  logger: Logger,
): Registration {
  const ac = new AbortController();
  const signal = ac.signal;
  const loop = (async () => {
    let delays = backoffDelays({ initialMs: 100, maxMs: 5000, multiplier: 2, jitter: 0.2 });
    while (!signal.aborted) {
      try {
        const { leaseId } = await meta.registerNode({ node: { id: node.id, address: node.address, roles: node.roles, alive: true }, ttlMs }, { signal, timeoutMs: ttlMs });
        logger.info("registered with the meta-manager", { nodeId: node.id, address: node.address });
        delays = backoffDelays({ initialMs: 100, maxMs: 5000, multiplier: 2, jitter: 0.2 });
        for (;;) {
          await abortableSleep(Math.max(50, Math.floor(ttlMs / 3)), signal);
          const { alive } = await meta.heartbeat({ leaseId }, { signal, timeoutMs: ttlMs });
          if (!alive) {
            logger.warn("registration lease lost; registering again", { nodeId: node.id });
            break;
          }
        }
      } catch (e) {
        if (signal.aborted) return;
        const wait = delays.next().value ?? 5000;
        logger.warn("meta-manager registration failed; retrying", { err: e, retryInMs: wait });
        try {
          await abortableSleep(wait, signal);
        } catch {
          // Aborted: stopping.
          return;
        }
      }
    }
  })();
  return {
    async stop() {
      ac.abort();
      await loop.catch(() => undefined);
    },
  };
}
