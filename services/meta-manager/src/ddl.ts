// Journaling DDL: the catalog appends a DDL entry to every partition that hosts one of a
// collection's shards. Appends are idempotent: the producer id is derived from the
// collection's uid and the operation, and the seq is always 1, so a re-append after a
// crash (or by a concurrent retry) is answered by the journal's deduplication with the
// original offset and ts instead of a second entry.
import { createHash } from "node:crypto";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { InternalError, UnavailableError } from "@vecraft/common";
import type { DdlOp, DdlPayload, JournalService } from "@vecraft/rpc";

export interface DdlAppendResult {
  readonly partition: number;
  readonly offset: bigint;
  readonly ts: bigint;
  /** True when the journal had the entry already (a re-append). */
  readonly deduplicated: boolean;
}

/** The one journal operation the catalog needs; tests and the service adapt a JournalService client to it. */
export interface DdlJournal {
  /** Appends `ddl` to `partition` as producer `producerId` (epoch 0, seq 1). */
  appendDdl(partition: number, producerId: bigint, ddl: DdlPayload, signal: AbortSignal): Promise<DdlAppendResult>;
}

/** The producer epoch of DDL appends: constant, so that a re-append is never fenced. */
export const DDL_PRODUCER_EPOCH = 0;
/** The seq of the one entry a DDL producer ever writes per partition. */
export const DDL_SEQ = 1n;

/**
 * The idempotent producer id of a DDL operation: the first 8 bytes of
 * SHA-256("vecraft-ddl\0" + op + "\0" + uid), big-endian, top bit cleared (so it is a
 * positive int64 everywhere), never 0 (0 disables deduplication).
 */
export function ddlProducerId(uid: string, op: DdlOp): bigint {
  const digest = createHash("sha256").update(`vecraft-ddl\0${op}\0${uid}`, "utf8").digest();
  const id = BigInt.asUintN(63, digest.readBigUInt64BE(0));
  return id === 0n ? 1n : id;
}

export interface JournalDdlOptions {
  /** Deadline of one Append attempt, in ms. */
  readonly attemptTimeoutMs: number;
}

/** A DdlJournal over a JournalService client. */
export function journalDdl(client: Client<typeof JournalService>, options: JournalDdlOptions): DdlJournal {
  return {
    async appendDdl(partition, producerId, ddl, signal) {
      let res;
      try {
        res = await client.append(
          {
            partition,
            producerId,
            producerEpoch: DDL_PRODUCER_EPOCH,
            firstSeq: DDL_SEQ,
            entries: [{ payload: { case: "ddl", value: ddl } }],
          },
          { signal, timeoutMs: options.attemptTimeoutMs },
        );
      } catch (e) {
        // One attempt timing out says nothing about the next: the append is idempotent,
        // so it is worth retrying like a dropped connection.
        if (e instanceof ConnectError && e.code === Code.DeadlineExceeded && !signal.aborted) {
          throw new UnavailableError(`journal partition ${partition} did not answer within ${options.attemptTimeoutMs} ms`, { cause: e });
        }
        throw e;
      }
      const r = res.results[0];
      if (r === undefined) throw new InternalError(`journal partition ${partition} answered an append of one entry with no result`);
      return { partition, offset: r.offset, ts: r.ts, deduplicated: res.deduplicated };
    },
  };
}
