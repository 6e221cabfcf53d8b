// @vecraft/cli: the `vecraft` command. The package API is for tests and for modules that
// add commands (serve, cluster): run the CLI in-process, and the registry's types; and the
// local-cluster launcher (`vecraft cluster up`, the multi-process tests).
export { runCli, DEFAULT_URL, DEFAULT_RETRY_BUDGET_MS, DEFAULT_PROGRESS_INTERVAL_MS } from "./cli.js";
export type { CliDeps } from "./cli.js";
export { DEFAULT_COMMANDS } from "./commands/index.js";
export { BufferWriter, createIO } from "./io.js";
export type { CliIO, Writer } from "./io.js";
export { GLOBAL_OPTIONS, commandHelp, mainHelp } from "./registry.js";
export type { ArgSpec, CommandContext, CommandSpec, GlobalOptions, OptionSpec, ParsedArgs } from "./registry.js";
export { CommandFailed, InputError, UsageError, EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED } from "./errors.js";
export { boolOpt, durationOpt, intOpt, jsonObjectOpt, listOpt, parseInteger, requiredString, stringOpt } from "./args.js";
export { table, keyValues, toJson } from "./format.js";
export { startCluster, findEtcd, defaultServicesDir, EtcdNotFoundError, ClusterStartError } from "./cluster/launcher.js";
export type { ClusterOptions, ClusterEvent, ClusterEndpoints, RunningCluster } from "./cluster/launcher.js";
export type { ClusterProcess } from "./cluster/process.js";
export { ROLES, ROLE_FLAGS } from "./cluster/roles.js";
export type { Role } from "./cluster/roles.js";
