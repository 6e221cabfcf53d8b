// The import pipeline: read records in file order, group them into batches, and keep up
// to `concurrency` Upsert calls in flight. Each batch has its own request id (the SDK
// retries transient failures with it, so a retry never writes twice). The first batch
// the server rejects stops the import: no new batch is sent, the ones in flight finish,
// and the rejection is reported with the file line or row of the offending record.
import { Code, ConnectError } from "@connectrpc/connect";
import type { VecraftClient } from "@vecraft/client";
import { codeLabel, errorDetailsOf } from "@vecraft/common";
import type { ProgressReporter, ProgressState } from "./progress.js";
import { where } from "./source.js";
import type { RecordSource, SourceRecord } from "./source.js";

export interface ImportSettings {
  collection: string;
  /** Records per Upsert. */
  batchSize: number;
  /** Upserts in flight at once. */
  concurrency: number;
  /** Batch n is sent with request id `${requestIdPrefix}-${n}` (n from 1, zero-padded). */
  requestIdPrefix: string;
  signal: AbortSignal;
  now: () => number;
  /** One line for an RPC failure not tied to a record (e.g. the server is unreachable). */
  describeError?: (e: ConnectError) => string;
}

export interface ImportResult {
  /** Records acknowledged by the server. */
  records: number;
  /** Batches acknowledged. */
  batches: number;
  elapsedMs: number;
  /** The client's session token after the last acknowledged batch. */
  sessionToken: string | undefined;
}

export interface Batch {
  /** From 1, in file order. */
  readonly index: number;
  readonly records: readonly SourceRecord[];
  /** The file bytes this batch covers, for progress. */
  readonly bytes: number;
}

/** Why an import stopped, with what it had written by then. */
export class ImportFailed extends Error {
  override name = "ImportFailed";
  constructor(
    message: string,
    readonly result: ImportResult,
    override readonly cause: unknown,
  ) {
    super(message);
  }
}

export async function* toBatches(source: AsyncIterable<SourceRecord>, size: number): AsyncGenerator<Batch, void, undefined> {
  let records: SourceRecord[] = [];
  let index = 0;
  let start = 0;
  for await (const r of source) {
    records.push(r);
    if (records.length >= size) {
      const end = r.end;
      yield { index: ++index, records, bytes: end - start };
      start = end;
      records = [];
    }
  }
  if (records.length > 0) {
    const end = records[records.length - 1]!.end;
    yield { index: ++index, records, bytes: end - start };
  }
}

export function requestIdOf(prefix: string, batch: number): string {
  return `${prefix}-${String(batch).padStart(6, "0")}`;
}

/**
 * Turns the server's rejection of a batch into a message about the file: the item index
 * (from the `vecraft-index` detail, or `records[i]` in the message) becomes the line or row
 * of that record, e.g. `line 17 (id "a7"): vector: expected 128 dimensions, got 127`.
 */
export function explainRejection(
  e: ConnectError,
  batch: Batch,
  source: Pick<RecordSource, "unit">,
  describe: (e: ConnectError) => string = (x) => `${x.rawMessage} [${codeLabel(x.code)}]`,
): string {
  const detail = errorDetailsOf(e)["index"];
  const fromMessage = /\brecords\[([0-9]+)\]/.exec(e.rawMessage)?.[1];
  const index = detail !== undefined && /^[0-9]+$/.test(detail) ? Number(detail) : fromMessage !== undefined ? Number(fromMessage) : undefined;
  const item = index === undefined ? undefined : batch.records[index];
  const code = codeLabel(e.code);
  if (index === undefined || item === undefined) {
    const first = batch.records[0];
    const last = batch.records[batch.records.length - 1];
    const span =
      first === undefined || last === undefined ? "" : first === last ? ` (${where(source, first.loc)})` : ` (${source.unit}s ${first.loc}-${last.loc})`;
    const verb = e.code === Code.InvalidArgument || e.code === Code.AlreadyExists ? "was rejected" : "failed";
    return `batch ${batch.index}${span} ${verb}: ${describe(e)}`;
  }
  // "records[3].vector: ..." -> "vector: ..."; another "records[j].id" -> where record j came from.
  let text = e.rawMessage.replace(new RegExp(`^records\\[${index}\\]\\.?`), "").replace(/^:\s*/, "");
  text = text.replace(/\brecords\[([0-9]+)\](?:\.[A-Za-z_][\w.[\]]*)?/g, (m, j: string) => {
    const other = batch.records[Number(j)];
    return other === undefined ? m : where(source, other.loc);
  });
  return `${where(source, item.loc)} (id ${JSON.stringify(item.id)}): ${text} [${code}]`;
}

export async function runImport(client: VecraftClient, source: RecordSource, s: ImportSettings, progress: ProgressReporter): Promise<ImportResult> {
  const started = s.now();
  const result: ImportResult = { records: 0, batches: 0, elapsedMs: 0, sessionToken: client.sessionToken };
  let bytesDone = 0;
  const state = (): ProgressState => ({
    records: result.records,
    bytesDone,
    totalBytes: source.totalBytes,
    totalRecords: source.totalRecords,
    elapsedMs: s.now() - started,
  });
  // The earliest failure in file order wins: that is the one a user fixes first.
  let failure: { order: number; message: string; cause: unknown } | undefined;
  const fail = (order: number, message: string, cause: unknown): void => {
    if (failure === undefined || order < failure.order) failure = { order, message, cause };
  };

  const inFlight = new Set<Promise<void>>();
  const send = async (batch: Batch): Promise<void> => {
    try {
      await client.upsert(
        s.collection,
        batch.records.map((r) => ({ id: r.id, vector: r.vector, ...(r.metadata !== undefined ? { metadata: r.metadata } : {}) })),
        { requestId: requestIdOf(s.requestIdPrefix, batch.index), signal: s.signal },
      );
      result.records += batch.records.length;
      result.batches++;
      bytesDone += batch.bytes;
      result.sessionToken = client.sessionToken;
      progress.update(state());
    } catch (e) {
      const message = e instanceof ConnectError ? explainRejection(e, batch, source, s.describeError) : e instanceof Error ? e.message : String(e);
      fail(batch.index, message, e);
    }
  };

  let nextIndex = 1;
  try {
    for await (const batch of toBatches(source, s.batchSize)) {
      nextIndex = batch.index + 1;
      while (inFlight.size >= s.concurrency && failure === undefined) await Promise.race(inFlight);
      if (failure !== undefined) break;
      const p: Promise<void> = send(batch).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
  } catch (e) {
    // A record the reader cannot parse: after every batch read so far in file order.
    fail(nextIndex, e instanceof Error ? e.message : String(e), e);
  }
  await Promise.all(inFlight);
  result.elapsedMs = s.now() - started;
  if (failure !== undefined) {
    progress.interrupt();
    throw new ImportFailed(failure.message, result, failure.cause);
  }
  progress.finish(state());
  return result;
}
