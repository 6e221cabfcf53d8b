// @vecraft/query-processor: consistency, fan-out and merge. Other services use
// QueryService from @vecraft/rpc; start() is for tests and the standalone process.
export { start, storageClientPool } from "./service.js";
export type { QueryDeps, RunningQuery } from "./service.js";
export { loadQueryConfig, queryConfigSchema } from "./config.js";
export type { QueryConfig } from "./config.js";
