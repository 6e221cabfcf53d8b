import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { MetaService } from "@vecraft/rpc";

export function metaRoutes(impl: ServiceImpl<typeof MetaService>): (router: ConnectRouter) => void {
  return (router) => {
    router.service(MetaService, impl);
  };
}
