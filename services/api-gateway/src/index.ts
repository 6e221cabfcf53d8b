// @vecraft/api-gateway: the public door. Other services never import this package; tests
// and the standalone process use start().
export { start } from "./service.js";
export type { GatewayDeps, RunningGateway } from "./service.js";
export { gatewayConfigSchema, loadGatewayConfig } from "./config.js";
export type { GatewayConfig } from "./config.js";
export { parseApiKeys, loadApiKeysFile, sha256Hex } from "./auth.js";
export type { ApiKeySpec, Role } from "./auth.js";
export type { StorageClientFactory } from "./storage.js";
export { parseSessionToken, formatSessionToken } from "./session-token.js";
export { producerIdOf } from "./producer.js";
