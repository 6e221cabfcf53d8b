// An in-memory JournalService that records appends and deduplicates idempotent
// producers like the real journal: a retry of (partition, producer_id, producer_epoch,
// first_seq) gets the original offset and ts back. Faults are injected per call.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { EntryType, JournalEntrySchema, JournalService, type DdlPayload, type JournalEntry } from "@vecraft/rpc";

export interface AppendCall {
  readonly partition: number;
  readonly producerId: bigint;
  readonly seq: bigint;
  readonly ddl: DdlPayload | undefined;
  /** What the fake answered: appended, deduplicated, or an error code. */
  readonly outcome: "appended" | "deduplicated" | Code;
}

/** Decides the fate of an append before it is applied: an error code to fail it, or undefined. */
export type Fault = (call: { partition: number; producerId: bigint; ddl: DdlPayload | undefined }) => Code | undefined;

export class FakeJournal {
  readonly logs = new Map<number, JournalEntry[]>();
  readonly calls: AppendCall[] = [];
  fault: Fault | undefined;
  private readonly producers = new Map<string, JournalEntry>();
  private ts = 1_000n << 16n;

  constructor(readonly partitions: number) {
    for (let p = 0; p < partitions; p++) this.logs.set(p, []);
  }

  /** DDL entries in a partition, in offset order. */
  ddl(partition: number): DdlPayload[] {
    return (this.logs.get(partition) ?? []).flatMap((e) => (e.payload.case === "ddl" ? [e.payload.value] : []));
  }

  allDdl(): { partition: number; ddl: DdlPayload; ts: bigint }[] {
    const out: { partition: number; ddl: DdlPayload; ts: bigint }[] = [];
    for (const [partition, log] of this.logs) for (const e of log) if (e.payload.case === "ddl") out.push({ partition, ddl: e.payload.value, ts: e.ts });
    return out;
  }

  client(): Client<typeof JournalService> {
    return createClient(
      JournalService,
      createRouterTransport(({ service }) => {
        service(JournalService, {
          append: (req) => {
            const first = req.entries[0];
            const ddl = first?.payload.case === "ddl" ? first.payload.value : undefined;
            const record = (outcome: AppendCall["outcome"]): void => {
              this.calls.push({ partition: req.partition, producerId: req.producerId, seq: req.firstSeq, ddl, outcome });
            };
            const log = this.logs.get(req.partition);
            if (log === undefined) {
              record(Code.NotFound);
              throw new ConnectError(`partition ${req.partition} does not exist`, Code.NotFound);
            }
            const code = this.fault?.({ partition: req.partition, producerId: req.producerId, ddl });
            if (code !== undefined) {
              record(code);
              throw new ConnectError(`injected fault in partition ${req.partition}`, code);
            }
            const dedupKey = `${req.partition}/${req.producerId}/${req.producerEpoch}/${req.firstSeq}`;
            const seen = req.producerId !== 0n ? this.producers.get(dedupKey) : undefined;
            if (seen !== undefined) {
              record("deduplicated");
              return { partition: req.partition, epoch: 1, deduplicated: true, results: [{ offset: seen.offset, ts: seen.ts }] };
            }
            this.ts += 1n << 16n;
            const entry = create(JournalEntrySchema, {
              partition: req.partition,
              offset: BigInt(log.length + 1),
              epoch: 1,
              ts: this.ts,
              type: EntryType.DDL,
              producerId: req.producerId,
              producerEpoch: req.producerEpoch,
              seq: req.firstSeq,
              payload: first?.payload.case === "ddl" ? { case: "ddl", value: first.payload.value } : { case: undefined },
            });
            log.push(entry);
            if (req.producerId !== 0n) this.producers.set(dedupKey, entry);
            record("appended");
            return { partition: req.partition, epoch: 1, deduplicated: false, results: [{ offset: entry.offset, ts: entry.ts }] };
          },
        });
      }),
    );
  }
}
