// Public API of @vecraft/hlc: import from the package root, never from a module path.
export {
  LOGICAL_BITS,
  MAX_LOGICAL,
  MAX_TIMESTAMP,
  MAX_WALL_MS,
  ZERO,
  assertTimestamp,
  compare,
  decode,
  encode,
  formatTimestamp,
  fromDate,
  maxTimestamp,
  parseTimestamp,
  toDate,
} from "./timestamp.js";
export type { DecodedTimestamp, Timestamp } from "./timestamp.js";
export {
  ClockOffsetError,
  DEFAULT_MAX_CLOCK_OFFSET_MS,
  HybridLogicalClock,
  resolveHybridLogicalClockOptions,
  systemClock,
} from "./clock.js";
export type { HybridLogicalClockConfig, HybridLogicalClockOptions, PhysicalClock } from "./clock.js";
