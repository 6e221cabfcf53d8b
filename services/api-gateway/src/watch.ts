// WatchChanges: the committed changes of one collection in global (ts, partition,
// offset) order, first from from_ts, then live.
//
// Each partition hosting the collection is followed with JournalService.Subscribe from
// the first offset whose ts >= from_ts (found by binary search with ReadEntries: within a
// partition ts strictly increases with offset). A partition's stream also tells how far
// it is resolved: once an entry (a tick included) with ts T arrived, nothing later in
// that partition has a smaller ts, and a caught-up message says the same of its closed
// ts. So every buffered change with ts <= min over partitions of that watermark can be
// emitted, merged in (ts, partition, offset) order; that minimum is the resolved_ts of
// each message.
//
// Flow control is pull-based: a partition's stream is read only while its buffer holds
// fewer than `bufferChanges` changes, and the response stream is written with `yield`,
// which waits for the client. The merge cannot deadlock: the partition with the smallest
// watermark can always emit everything it buffered.
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { InternalError, NotFoundError, OutOfRangeError, UnavailableError, abortableSleep, backoffDelays, isRetryable, raceSignal, type Logger } from "@vecraft/common";
import {
  DdlOp,
  EntryType,
  Op,
  RecordChangeSchema,
  type JournalEntry,
  type JournalPartitionStatus,
  type JournalService,
  type RecordChange,
  type SubscribeResponse,
  type WatchChangesRequest,
  type WatchChangesResponse,
} from "@vecraft/rpc";
import type { CatalogCache, ResolvedCollection } from "./catalog.js";
import { bytesToVector, metadataFromJson } from "./codec.js";
import type { GatewayMetrics } from "./metrics.js";
import { callOptions, downstream, type Scope } from "./scope.js";
import { checkCollectionName } from "./validate.js";

export interface WatchDeps {
  readonly journal: Client<typeof JournalService>;
  readonly catalog: CatalogCache;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  /** Changes buffered per partition before its stream is paused. */
  readonly bufferChanges: number;
  /** An idle stream sends a heartbeat this often. */
  readonly heartbeatMs: number;
  readonly downstreamTimeoutMs: number;
  /** Milliseconds, for heartbeats; default performance.now. */
  readonly now?: () => number;
}

type Init<T> = Omit<T, "$typeName" | "$unknown">;

/** Most changes, and approximate bytes, in one response message (an entry is never split). */
const MAX_CHANGES_PER_MESSAGE = 1000;
const MAX_BYTES_PER_MESSAGE = 4 * 1024 * 1024;
/** Reconnecting a partition's stream gives up after this long without a message. */
const RESUBSCRIBE_BUDGET_MS = 30_000;

interface Item {
  readonly ts: bigint;
  readonly partition: number;
  readonly offset: bigint;
  readonly changes: RecordChange[];
  readonly bytes: number;
  /** The collection was dropped by this entry: the stream ends here. */
  readonly dropped: boolean;
}

interface Source {
  readonly partition: number;
  /** The next offset to ask for when (re)subscribing. */
  next: bigint;
  /** Every entry of the partition with ts <= resolved has been received. */
  resolved: bigint;
  readonly buffer: Item[];
  head: number;
  /** Changes buffered (items[head..]). */
  buffered: number;
  iter: AsyncIterator<SubscribeResponse> | undefined;
  pending: Promise<Step> | undefined;
}

interface Step {
  readonly source: Source;
  readonly msg: SubscribeResponse;
}

function compareItems(a: Item, b: Item): number {
  if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1;
  if (a.partition !== b.partition) return a.partition - b.partition;
  return a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0;
}

export async function* watchChanges(deps: WatchDeps, req: WatchChangesRequest, scope: Scope): AsyncGenerator<Init<WatchChangesResponse>> {
  const now = deps.now ?? ((): number => performance.now());
  const name = checkCollectionName(req.collection);
  const col = await deps.catalog.collection(name, scope.signal);
  if (col.partitions.length === 0) throw new InternalError(`collection ${JSON.stringify(name)} has no partitions in the catalog`);
  // Changes of this incarnation of the collection only.
  const fromTs = req.fromTs > col.createdTs ? req.fromTs : col.createdTs;

  const status = await downstream("journal", () => deps.journal.getPartitions({}, callOptions(scope, deps.downstreamTimeoutMs)));
  const starts = await Promise.all(
    col.partitions.map(async (partition) => {
      const st = status.partitions.find((p) => p.partition === partition);
      if (st === undefined || !st.serving) throw new UnavailableError(`journal partition ${partition} is not being served`);
      return { partition, offset: await startOffset(deps, st, fromTs, scope) };
    }),
  );

  const ac = new AbortController();
  const onAbort = (): void => ac.abort(scope.signal.reason);
  scope.signal.addEventListener("abort", onAbort, { once: true });
  const initial = fromTs > 0n ? fromTs - 1n : 0n;
  const sources: Source[] = starts.map(({ partition, offset }) => ({
    partition,
    next: offset,
    resolved: initial,
    buffer: [],
    head: 0,
    buffered: 0,
    iter: undefined,
    pending: undefined,
  }));
  deps.metrics.watchStreams.inc();
  let sentResolved = initial;
  let sentAt = now();

  const subscribe = (s: Source): AsyncIterator<SubscribeResponse> =>
    deps.journal.subscribe({ partition: s.partition, fromOffset: s.next, skipTicks: false }, { signal: ac.signal })[Symbol.asyncIterator]();

  const pull = (s: Source): Promise<Step> => {
    return (async (): Promise<Step> => {
      let delays: Generator<number, void> | undefined;
      for (;;) {
        try {
          s.iter ??= subscribe(s);
          const r = await s.iter.next();
          if (r.done !== true) return { source: s, msg: r.value };
          // The journal ended the stream (shutting down?): follow it again from where it stopped.
          s.iter = undefined;
          throw new UnavailableError(`journal subscription of partition ${s.partition} ended`);
        } catch (e) {
          s.iter = undefined;
          if (ac.signal.aborted || !isRetryable(e)) throw e;
          delays ??= backoffDelays({ initialMs: 100, maxMs: 2_000, multiplier: 2, jitter: 0.2, budgetMs: RESUBSCRIBE_BUDGET_MS });
          const wait = delays.next();
          if (wait.done === true) throw e;
          deps.logger.warn("journal subscription failed; resubscribing", { partition: s.partition, from: s.next, retryInMs: wait.value, error: e });
          await abortableSleep(wait.value, ac.signal);
        }
      }
    })();
  };

  const apply = (s: Source, msg: SubscribeResponse): void => {
    for (const e of msg.entries) {
      s.next = e.offset + 1n;
      if (e.ts > s.resolved) s.resolved = e.ts;
      if (e.ts < fromTs) continue;
      const item = itemOf(e, col, req);
      if (item === undefined) continue;
      s.buffer.push(item);
      s.buffered += item.changes.length;
      deps.metrics.watchBufferedChanges.inc(item.changes.length);
    }
    if (msg.nextOffset > s.next) s.next = msg.nextOffset;
    // Caught up: the partition's closed ts is a watermark too.
    if (msg.nextOffset > msg.commitOffset && msg.closedTs > s.resolved) s.resolved = msg.closedTs;
  };

  const takeReady = (resolved: bigint): Item[] => {
    const out: Item[] = [];
    for (;;) {
      let best: Source | undefined;
      let bestItem: Item | undefined;
      for (const s of sources) {
        const head = s.buffer[s.head];
        if (head !== undefined && head.ts <= resolved && (bestItem === undefined || compareItems(head, bestItem) < 0)) {
          best = s;
          bestItem = head;
        }
      }
      if (best === undefined || bestItem === undefined) break;
      best.head++;
      best.buffered -= bestItem.changes.length;
      deps.metrics.watchBufferedChanges.dec(bestItem.changes.length);
      if (best.head > 1024 && best.head * 2 > best.buffer.length) {
        best.buffer.splice(0, best.head);
        best.head = 0;
      }
      out.push(bestItem);
      if (bestItem.dropped) break;
    }
    return out;
  };

  try {
    for (;;) {
      for (const s of sources) {
        if (s.pending === undefined && s.buffered < deps.bufferChanges) {
          s.pending = pull(s);
          // Its failure is seen by the race below; this only keeps a rejection that lands
          // while the loop waits on the client from counting as unhandled.
          s.pending.catch(() => undefined);
        }
      }
      const pending = sources.flatMap((s) => (s.pending !== undefined ? [s.pending] : []));
      if (pending.length > 0) {
        const step = await raceSignal(Promise.race(pending), scope.signal);
        step.source.pending = undefined;
        apply(step.source, step.msg);
      }
      const resolved = sources.reduce((m, s) => (s.resolved < m ? s.resolved : m), sources[0]?.resolved ?? 0n);
      const ready = takeReady(resolved);
      if (ready.length === 0 && pending.length === 0) {
        throw new InternalError("WatchChanges: every partition buffer is full and nothing can be emitted");
      }
      const dropped = ready.findIndex((i) => i.dropped);
      const emit = dropped >= 0 ? ready.slice(0, dropped) : ready;
      const dropTs = dropped >= 0 ? ready[dropped]?.ts : undefined;
      for (const msg of chunk(emit, dropTs !== undefined ? dropTs - 1n : resolved)) {
        yield msg;
        sentResolved = msg.resolvedTs;
        sentAt = now();
      }
      if (dropTs !== undefined) {
        throw new NotFoundError(`collection ${JSON.stringify(name)} was dropped (at ts ${dropTs}); the stream ends`, { details: { collection: name } });
      }
      if (emit.length === 0 && resolved > sentResolved && now() - sentAt >= deps.heartbeatMs) {
        yield { changes: [], resolvedTs: resolved };
        sentResolved = resolved;
        sentAt = now();
      }
    }
  } finally {
    scope.signal.removeEventListener("abort", onAbort);
    ac.abort(new Error("WatchChanges ended"));
    for (const s of sources) {
      // The calls were aborted above; their rejections are expected and of no interest now.
      s.pending?.catch(() => undefined);
      deps.metrics.watchBufferedChanges.dec(s.buffered);
      s.buffered = 0;
    }
    deps.metrics.watchStreams.dec();
  }
}

/**
 * Splits merged items into messages of bounded size, never splitting an entry. A message
 * followed by another says resolved_ts = its last ts (or one less when the next message
 * starts at the same ts, so that resuming from resolved_ts + 1 repeats nothing); the last
 * one says `resolved`.
 */
function* chunk(items: readonly Item[], resolved: bigint): Generator<Init<WatchChangesResponse>> {
  let changes: RecordChange[] = [];
  let bytes = 0;
  let lastTs = 0n;
  for (const item of items) {
    const full = changes.length > 0 && (changes.length + item.changes.length > MAX_CHANGES_PER_MESSAGE || bytes + item.bytes > MAX_BYTES_PER_MESSAGE);
    if (full) {
      yield { changes, resolvedTs: item.ts > lastTs ? lastTs : lastTs - 1n };
      changes = [];
      bytes = 0;
    }
    changes.push(...item.changes);
    bytes += item.bytes;
    lastTs = item.ts;
  }
  if (changes.length > 0) yield { changes, resolvedTs: resolved };
}

/** The changes an entry makes to the watched collection, or undefined when it makes none. */
function itemOf(e: JournalEntry, col: ResolvedCollection, req: WatchChangesRequest): Item | undefined {
  const p = e.payload;
  if (p.case === "ddl") {
    if (
      e.type === EntryType.DDL &&
      p.value.op === DdlOp.DROP_COLLECTION &&
      p.value.collection === col.spec.name &&
      (p.value.uid === "" || col.uid === "" || p.value.uid === col.uid)
    ) {
      return { ts: e.ts, partition: e.partition, offset: e.offset, changes: [], bytes: 0, dropped: true };
    }
    return undefined;
  }
  if (p.case !== "data" || p.value.collection !== col.spec.name) return undefined;
  const d = p.value;
  const base = { ts: e.ts, partition: e.partition, offset: e.offset, requestId: d.requestId, principal: d.principal };
  let bytes = 0;
  const changes: RecordChange[] = [];
  for (const u of d.upserts) {
    const metadata = req.includeMetadata ? metadataFromJson(u.metadataJson, `record ${JSON.stringify(u.id)} metadata`) : undefined;
    changes.push(
      create(RecordChangeSchema, {
        ...base,
        op: Op.UPSERT,
        id: u.id,
        vector: req.includeVectors ? bytesToVector(u.vectorF32, `record ${JSON.stringify(u.id)} vector`) : [],
        ...(metadata !== undefined ? { metadata } : {}),
      }),
    );
    bytes += 64 + u.id.length + (req.includeVectors ? u.vectorF32.byteLength : 0) + (req.includeMetadata ? u.metadataJson.length : 0);
  }
  for (const id of d.deleteIds) {
    changes.push(create(RecordChangeSchema, { ...base, op: Op.DELETE, id }));
    bytes += 64 + id.length;
  }
  if (changes.length === 0) return undefined;
  return { ts: e.ts, partition: e.partition, offset: e.offset, changes, bytes, dropped: false };
}

/**
 * The first offset of a partition whose entry has ts >= fromTs (commit + 1 when none yet),
 * by binary search: ts strictly increases with offset within a partition. OUT_OF_RANGE
 * when entries that may have ts >= fromTs were already removed by retention.
 */
async function startOffset(deps: WatchDeps, st: JournalPartitionStatus, fromTs: bigint, scope: Scope): Promise<bigint> {
  const first = st.firstOffset > 0n ? st.firstOffset : 1n;
  const commit = st.commitOffset;
  if (commit < first) return commit + 1n;
  const tsAt = async (offset: bigint): Promise<bigint> => {
    const res = await downstream("journal", () =>
      deps.journal.readEntries({ refs: [{ partition: st.partition, offset }] }, callOptions(scope, deps.downstreamTimeoutMs)),
    );
    const e = res.entries[0];
    if (e === undefined) throw new InternalError(`journal returned no entry at ${st.partition}/${offset}`);
    return e.ts;
  };
  if (fromTs === 0n) return first;
  if (fromTs > st.closedTs) return commit + 1n;
  if (first > 1n && (await tsAt(first)) > fromTs) {
    throw new OutOfRangeError(`from_ts ${fromTs} is older than the retained journal of partition ${st.partition}`, { details: { field: "from_ts" } });
  }
  let lo = first;
  let hi = commit;
  // Invariant: ts(hi) >= fromTs (hi = commit has ts = closed ts >= fromTs).
  while (lo < hi) {
    const mid = lo + (hi - lo) / 2n;
    if ((await tsAt(mid)) >= fromTs) hi = mid;
    else lo = mid + 1n;
  }
  return lo;
}
