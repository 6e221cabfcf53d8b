// Idempotent writes without state in the gateway: the journal producer of a write is
// derived from its request id, so a retry through any gateway, before or after a
// restart, presents the same (producer_id, producer_epoch, first_seq) to every partition
// and the journal answers it from its deduplication table instead of appending again.
import { xxhash64 } from "@vecraft/model";

/** A fixed seed ("vecraftp" in ASCII), so request-id producers do not collide with other hashes of the same text. */
const PRODUCER_SEED = 0x7665637261667470n;

/** Every request-id producer writes with epoch 0: there is nothing to fence. */
export const REQUEST_PRODUCER_EPOCH = 0;

/** Each partition's batch of one request starts at seq 1 (one batch per producer per partition). */
export const REQUEST_FIRST_SEQ = 1n;

const encoder = new TextEncoder();

/** `xxhash64(utf8(request_id), seed)`, never 0 (0 turns deduplication off). */
export function producerIdOf(requestId: string): bigint {
  const h = xxhash64(encoder.encode(requestId), PRODUCER_SEED);
  return h === 0n ? 1n : h;
}
