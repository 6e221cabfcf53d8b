// @vecraft/common: configuration, logging, metrics, errors, lifecycle and the RPC server
// that every Vecraft process shares. Import from the package, never from its files.

export {
  VecraftError,
  InvalidArgumentError,
  NotFoundError,
  AlreadyExistsError,
  FailedPreconditionError,
  AbortedError,
  UnavailableError,
  ResourceExhaustedError,
  DeadlineExceededError,
  DataLossError,
  OutOfRangeError,
  InternalError,
  isVecraftError,
  toConnectError,
  isRetryable,
  errorChain,
  errorDetailsOf,
  ERROR_DETAIL_HEADER_PREFIX,
  LEADER_HINT_HEADER,
} from "./errors.js";
export type { ErrorDetails, VecraftErrorOptions, FailedPreconditionErrorOptions } from "./errors.js";

export { createLogger, silentLogger, serializeError, isLogLevel, LOG_LEVELS } from "./logger.js";
export type { Logger, LogLevel, LogFields, LogSink, LoggerOptions } from "./logger.js";

export { createMetrics, rpcMetricsInterceptor, codeLabel, RPC_DURATION_BUCKETS } from "./metrics.js";
export type { MetricsOptions } from "./metrics.js";

export {
  abortableSleep,
  abortReason,
  backoffDelays,
  retry,
  Deferred,
  onShutdownSignals,
  DEFAULT_BACKOFF,
  raceSignal,
  DEFAULT_RETRY_BUDGET_MS,
} from "./lifecycle.js";
export type {
  BackoffOptions,
  RetryOptions,
  RetryAttemptInfo,
  ShutdownOptions,
  ShutdownHandle,
  SignalSource,
} from "./lifecycle.js";

export {
  defineConfig,
  registrationFields,
  loadConfig,
  formatConfigHelp,
  redactConfig,
  isHelpRequested,
  describeField,
  parseDuration,
  parseBytes,
  ConfigError,
  CONFIG_FILE_ENV,
} from "./config.js";
export type {
  ConfigSchema,
  ConfigOf,
  ConfigIssue,
  ConfigSource,
  FieldSpec,
  FieldType,
  IntField,
  NumberField,
  StringField,
  BoolField,
  DurationField,
  BytesField,
  EnumField,
  StringListField,
  LoadConfigOptions,
} from "./config.js";

export {
  startRpcServer,
  errorMappingInterceptor,
  DEFAULT_MAX_TIMEOUT_MS,
  DEFAULT_READ_MAX_BYTES,
  DEFAULT_WRITE_MAX_BYTES,
  DEFAULT_SHUTDOWN_GRACE_MS,
  DEFAULT_MAX_CONNECTIONS,
} from "./server.js";
export type { RpcServer, RpcServerOptions } from "./server.js";

export { runService } from "./main.js";
export type { ServiceMain } from "./main.js";
