import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { VecraftService } from "@vecraft/rpc";

export function gatewayRoutes(impl: ServiceImpl<typeof VecraftService>): (router: ConnectRouter) => void {
  return (router) => {
    router.service(VecraftService, impl);
  };
}
