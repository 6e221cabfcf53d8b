// @vecraft/storage-node: shard replicas replayed from the journal. Other services use
// StorageService from @vecraft/rpc; start() is for tests and the standalone process.
export { start } from "./service.js";
export type { RunningStorage, StorageDeps } from "./service.js";
export { loadStorageConfig, storageConfigSchema } from "./config.js";
export type { StorageConfig } from "./config.js";
