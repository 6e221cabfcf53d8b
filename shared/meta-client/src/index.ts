// @vecraft/meta-client: how services follow the meta-manager (the catalog watch) and
// stay registered in it (leases).
export { CatalogFollower } from "./catalog-follower.js";
export type { CatalogFollowerOptions } from "./catalog-follower.js";
export { keepRegistered } from "./registration.js";
export type { Registration } from "./registration.js";
export { DEFAULT_HEALTH, NodeHealth, isConnectionFailure } from "./node-health.js";
export type { HealthOptions } from "./node-health.js";
export { internalGrpcTransport } from "./transport.js";
export { ClientPool } from "./client-pool.js";
export type { ClientPoolOptions } from "./client-pool.js";
export type { InternalTransportOptions } from "./transport.js";
