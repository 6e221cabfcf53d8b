// An in-memory JournalService for storage-node unit tests: partitions are arrays of
// committed entries; Subscribe streams them and then tails. (Integration tests use the
// real journal process.)
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import type {
  FieldType} from "@vecraft/rpc";
import {
  CollectionSchema,
  DataPayloadSchema,
  DdlOp,
  DdlPayloadSchema,
  EntryType,
  JournalEntrySchema,
  JournalService,
  Metric,
  type JournalEntry,
} from "@vecraft/rpc";

export class FakeJournal {
  readonly logs = new Map<number, JournalEntry[]>();
  private wake = new Set<() => void>();
  private clock = 1000n << 16n;

  constructor(partitions: number) {
    for (let p = 0; p < partitions; p++) this.logs.set(p, []);
  }

  private append(partition: number, e: Omit<MessageInitShape<typeof JournalEntrySchema>, "partition" | "offset" | "ts" | "$typeName">): JournalEntry {
    const log = this.logs.get(partition)!;
    this.clock += 1n << 16n;
    const entry = create(JournalEntrySchema, { ...e, partition, offset: BigInt(log.length + 1), ts: this.clock, epoch: 1 });
    log.push(entry);
    for (const fn of [...this.wake]) fn();
    return entry;
  }

  tick(partition: number): JournalEntry {
    return this.append(partition, { type: EntryType.TICK });
  }

  createCollection(
    partition: number,
    spec: { name: string; dimension: number; shards?: number; metric?: Metric; fields?: { name: string; type: FieldType; indexed: boolean }[] },
    shards: number[],
    placement: { uid?: string; replicas?: Record<number, string[]> } = {},
  ): JournalEntry {
    const collection = create(CollectionSchema, { metric: Metric.COSINE, shards: shards.length, hnsw: { m: 16, efConstruction: 128, efSearch: 64 }, ...spec });
    const replicas = Object.entries(placement.replicas ?? {}).map(([shard, nodes]) => ({ shard: Number(shard), nodes }));
    return this.append(partition, {
      type: EntryType.DDL,
      payload: {
        case: "ddl",
        value: create(DdlPayloadSchema, {
          collection: spec.name,
          op: DdlOp.CREATE_COLLECTION,
          spec: toBinary(CollectionSchema, collection),
          shards,
          uid: placement.uid ?? "",
          replicas,
        }),
      },
    });
  }

  dropCollection(partition: number, name: string, uid = ""): JournalEntry {
    return this.append(partition, { type: EntryType.DDL, payload: { case: "ddl", value: create(DdlPayloadSchema, { collection: name, op: DdlOp.DROP_COLLECTION, uid }) } });
  }

  /** Wakes subscribers (after a client's `visible` limit was raised). */
  poke(): void {
    for (const fn of [...this.wake]) fn();
  }

  write(partition: number, collection: string, shard: number, upserts: { id: string; vector: number[]; metadata?: object }[], deletes: string[] = []): JournalEntry {
    return this.append(partition, {
      type: EntryType.DATA,
      payload: {
        case: "data",
        value: create(DataPayloadSchema, {
          collection,
          shard,
          upserts: upserts.map((u) => ({
            id: u.id,
            vectorF32: new Uint8Array(Float32Array.from(u.vector).buffer),
            metadataJson: JSON.stringify(u.metadata ?? {}),
          })),
          deleteIds: deletes,
        }),
      },
    });
  }

  /** A client; `visible` (when given) caps the offsets it can see per partition (a lagging view). */
  client(visible?: (partition: number) => number): Client<typeof JournalService> {
    const logs = this.logs;
    const wake = this.wake;
    return createClient(
      JournalService,
      createRouterTransport(({ service }) => {
        service(JournalService, {
          async *subscribe(req, ctx) {
            const log = logs.get(req.partition) ?? [];
            let next = Number(req.fromOffset);
            while (!ctx.signal.aborted) {
              const end = Math.min(log.length, visible?.(req.partition) ?? log.length);
              if (next <= end) {
                const batch = log.slice(next - 1, Math.min(end, next - 1 + (req.maxBatchEntries || 100)));
                next += batch.length;
                yield { entries: batch, commitOffset: BigInt(log.length), nextOffset: BigInt(next) };
                continue;
              }
              await new Promise<void>((resolve) => {
                const fn = (): void => {
                  wake.delete(fn);
                  resolve();
                };
                wake.add(fn);
                ctx.signal.addEventListener("abort", fn, { once: true });
              });
            }
          },
        });
      }),
    );
  }
}
