// The producer table against a reference model (JOURNAL-PROTOCOL.md §4.1 item 4): a
// sequence number that was ever accepted is never accepted again (no duplicates); a retry
// inside the window gets the original offsets; outside it, a definite error, never a guess.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { AbortedError, FailedPreconditionError, InvalidArgumentError } from "@vecraft/common";
import { ProducerTable } from "../src/dedup.js";

type Op = { kind: "fresh"; size: number; producer: number } | { kind: "retry"; pick: number; producer: number } | { kind: "bump"; producer: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("fresh" as const), size: fc.integer({ min: 1, max: 5 }), producer: fc.integer({ min: 0, max: 2 }) }),
  fc.record({ kind: fc.constant("retry" as const), pick: fc.nat(), producer: fc.integer({ min: 0, max: 2 }) }),
  fc.record({ kind: fc.constant("bump" as const), producer: fc.integer({ min: 0, max: 2 }) }),
);

describe("ProducerTable", () => {
  it("never accepts a sequence number twice, and answers retries with the original offsets", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 200 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 2, max: 30 }), (ops, windowBatches, windowEntries) => {
        const table = new ProducerTable({ windowBatches, windowEntries, maxProducers: 10 });
        const done = Promise.resolve();
        let nextOffset = 1;
        // The model: everything ever accepted, per producer and epoch.
        const model = [0, 1, 2].map(() => ({ epoch: 0, nextSeq: 1, batches: [] as { firstSeq: number; offsets: number[]; epoch: number }[] }));
        for (const op of ops) {
          const m = model[op.producer]!;
          const id = BigInt(op.producer + 1);
          if (op.kind === "bump") {
            m.epoch++;
            m.nextSeq = 1;
            continue;
          }
          if (op.kind === "fresh") {
            const v = table.check(id, m.epoch, m.nextSeq, op.size);
            expect(v.kind).toBe("new");
            const offsets = Array.from({ length: op.size }, (_, k) => nextOffset + k);
            table.record(id, m.epoch, m.nextSeq, nextOffset, offsets.map(BigInt), done);
            m.batches.push({ firstSeq: m.nextSeq, offsets, epoch: m.epoch });
            nextOffset += op.size + 1; // other producers' entries in between
            m.nextSeq += op.size;
            continue;
          }
          const mine = m.batches.filter((b) => b.epoch === m.epoch);
          if (mine.length === 0) continue;
          const b = mine[op.pick % mine.length]!;
          try {
            const v = table.check(id, m.epoch, b.firstSeq, b.offsets.length);
            // The one thing that must never happen: an accepted batch judged new again.
            expect(v.kind).toBe("retry");
            if (v.kind === "retry") {
              expect(v.offsets).toEqual(b.offsets);
              expect(v.ts).toEqual(b.offsets.map(BigInt));
            }
          } catch (e) {
            expect(e).toBeInstanceOf(FailedPreconditionError);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("fences older producer epochs and rejects partial overlaps", () => {
    const t = new ProducerTable({ windowBatches: 8, windowEntries: 100, maxProducers: 10 });
    t.record(1n, 2, 1, 10, [10n, 11n, 12n], Promise.resolve());
    expect(() => t.check(1n, 1, 4, 1)).toThrow(AbortedError);
    expect(() => t.check(1n, 2, 3, 2)).toThrow(InvalidArgumentError);
    expect(t.check(1n, 2, 2, 2)).toMatchObject({ kind: "retry", offsets: [11, 12] });
    expect(t.check(1n, 3, 1, 1)).toEqual({ kind: "new" });
  });

  it("forgets the least recently used producer beyond its capacity", () => {
    const t = new ProducerTable({ windowBatches: 8, windowEntries: 100, maxProducers: 2 });
    for (const id of [1n, 2n, 3n]) t.record(id, 0, 1, Number(id), [id], Promise.resolve());
    expect(t.size).toBe(2);
    // Producer 1 was forgotten: its retry would be accepted as new (documented limit).
    expect(t.check(1n, 0, 1, 1)).toEqual({ kind: "new" });
    expect(t.check(3n, 0, 1, 1).kind).toBe("retry");
  });
});
