import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { StorageService } from "@vecraft/rpc";

export function storageRoutes(impl: ServiceImpl<typeof StorageService>): (router: ConnectRouter) => void {
  return (router) => {
    router.service(StorageService, impl);
  };
}
