import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { QueryService } from "@vecraft/rpc";

export function queryRoutes(impl: ServiceImpl<typeof QueryService>): (router: ConnectRouter) => void {
  return (router) => {
    router.service(QueryService, impl);
  };
}
