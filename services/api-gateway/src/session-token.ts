// Session tokens: what a client presents to read its own writes and to never go back in
// time, across gateways. The format is public and deliberately plain: the decimal text of
// a packed HLC timestamp (wall_ms * 2^16 + logical), e.g. "112233445566778899". The
// empty string means "no token". Any other text is rejected, never guessed at.
import { InvalidArgumentError } from "@vecraft/common";
import { MAX_TIMESTAMP, maxTimestamp } from "@vecraft/hlc";

const DECIMAL = /^(0|[1-9][0-9]{0,19})$/;

/**
 * Parses a session token; "" is 0 (no token). A token that is not a canonical decimal
 * uint64 is INVALID_ARGUMENT naming `field`.
 */
export function parseSessionToken(token: string, field = "session_token"): bigint {
  if (token === "") return 0n;
  if (!DECIMAL.test(token)) {
    throw new InvalidArgumentError(`${field}: malformed session token (expected the decimal text of a timestamp, as a write or read response returned it)`, {
      details: { field },
    });
  }
  const ts = BigInt(token);
  if (ts > MAX_TIMESTAMP) {
    throw new InvalidArgumentError(`${field}: malformed session token (larger than a 64-bit timestamp)`, { details: { field } });
  }
  return ts;
}

/** The token for a timestamp; 0 (nothing written or read yet) is "". */
export function formatSessionToken(ts: bigint): string {
  return ts === 0n ? "" : ts.toString();
}

/** The token to hand back after an operation at `ts`: never older than the one presented. */
export function nextSessionToken(presented: bigint, ts: bigint): string {
  return formatSessionToken(maxTimestamp(presented, ts));
}
