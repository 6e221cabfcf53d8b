// @vecraft/meta-manager: the catalog and the cluster map behind vecraft.v1.MetaService.
// Other services never import this package; they talk to it through MetaService in
// proto/. Tests and the standalone process use start(); the MetaStore interface and the
// embedded store are exported for the standalone process and the etcd store to come.
export { start } from "./service.js";
export type { MetaDeps, RunningMeta } from "./service.js";
export { loadMetaConfig, metaConfigSchema } from "./config.js";
export type { MetaConfig } from "./config.js";
export { Catalog } from "./catalog.js";
export type { CatalogOptions, CatalogObserver, CollectionChange, NodeInput } from "./catalog.js";
export { FailoverController } from "./failover.js";
export type { DeferReason, FailoverOptions, FailoverObserver, FailoverPassResult } from "./failover.js";
export { PartitionMapController, planPartitionMap } from "./partition-map.js";
export type { PartitionChangeKind, PartitionMapObserver, PartitionMapOptions, PartitionMapPassResult } from "./partition-map.js";
export { TrackedMetaStore, StoreUnreachableError } from "./store/tracked-store.js";
export type { StoreHealth, TrackedStoreOptions } from "./store/tracked-store.js";
export { EmbeddedMetaStore } from "./store/embedded-meta-store.js";
export type { EmbeddedMetaStoreOptions } from "./store/embedded-meta-store.js";
export { EtcdMetaStore, etcdLeaseTtlSeconds } from "./store/etcd-meta-store.js";
export type { EtcdMetaStoreOptions } from "./store/etcd-meta-store.js";
export { LeaseNotFoundError, WatchCompactedError, WatchOverflowError, eventRevision, MAX_KEY_BYTES, MAX_VALUE_BYTES } from "./store/meta-store.js";
export type {
  MetaStore,
  KeyValue,
  LeaseId,
  RangeOptions,
  RangeResult,
  TxnCompare,
  TxnPut,
  TxnRequest,
  TxnResult,
  WatchEvent,
  CallOptions,
} from "./store/meta-store.js";
export { systemClock } from "./store/clock.js";
export type { Clock } from "./store/clock.js";
export { partitionOf, fnv1a32, leastLoaded, needsRepair, planRepairs, replicaKey } from "./placement.js";
export type { DeferredShard, PlacedShard, ReplicaMove, RepairInput, RepairPlan } from "./placement.js";
export { ddlProducerId } from "./ddl.js";
