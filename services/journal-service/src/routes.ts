import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { JournalService } from "@vecraft/rpc";

export function journalRoutes(impl: ServiceImpl<typeof JournalService>): (router: ConnectRouter) => void {
  return (router) => {
    router.service(JournalService, impl);
  };
}
