// A read's consistency as the query processors receive it: the level made explicit
// (unset means BOUNDED), the staleness filled in, and the session token checked and
// written canonically. The token presented is kept, because every read answers with
// max(token, read_ts).
import { create } from "@bufbuild/protobuf";
import { InvalidArgumentError } from "@vecraft/common";
import { Consistency, ReadConsistencySchema, type ReadConsistency } from "@vecraft/rpc";
import { formatSessionToken, parseSessionToken } from "./session-token.js";

export interface ResolvedConsistency {
  /** What to send to the query processor. */
  readonly consistency: ReadConsistency;
  /** The session token presented (0 when none). */
  readonly token: bigint;
}

const LEVELS: ReadonlySet<number> = new Set([Consistency.UNSPECIFIED, Consistency.EVENTUAL, Consistency.BOUNDED, Consistency.SESSION, Consistency.STRONG]);

export function resolveConsistency(c: ReadConsistency | undefined, defaultStalenessMs: number, field = "consistency"): ResolvedConsistency {
  const level = c?.level ?? Consistency.UNSPECIFIED;
  if (!LEVELS.has(level)) {
    throw new InvalidArgumentError(`${field}.level: unknown level ${level}`, { details: { field: `${field}.level` } });
  }
  const token = parseSessionToken(c?.sessionToken ?? "", `${field}.session_token`);
  const effective = level === Consistency.UNSPECIFIED ? Consistency.BOUNDED : level;
  const staleness = c?.stalenessMs ?? 0;
  return {
    consistency: create(ReadConsistencySchema, {
      level: effective,
      stalenessMs: effective === Consistency.BOUNDED ? (staleness === 0 ? defaultStalenessMs : staleness) : 0,
      sessionToken: formatSessionToken(token),
    }),
    token,
  };
}
