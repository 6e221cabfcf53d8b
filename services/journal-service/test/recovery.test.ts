// Recovery of a segment cut at every byte, or with a flipped bit: the log comes back as
// exactly the longest valid prefix after a torn tail, and refuses to serve after
// corruption in the middle (JOURNAL-PROTOCOL.md §4.1 item 2).
import { mkdtemp, readFile, rm, writeFile, readdir, truncate } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { crc32c } from "@node-rs/crc32";
import { decodeRecordAt, encodeRecord, RecordType, type RecordHeader } from "../src/log/codec.js";
import { nodeFileSystem } from "../src/log/file-system.js";
import { CorruptLogError, PartitionLog } from "../src/log/partition-log.js";
import { scanSegment, SEGMENT_HEADER_BYTES } from "../src/log/segment.js";

const fatal = (e: Error): never => {
  throw e;
};

function header(offset: number, extra: Partial<RecordHeader> = {}): RecordHeader {
  return { type: RecordType.Data, epoch: 1, offset, ts: BigInt(offset) * 65536n + 1000n, producerId: 7n, producerEpoch: 0, seq: offset, batchRemaining: 0, ...extra };
}

/** Appends one record as its own batch. */
function one(log: PartitionLog, h: RecordHeader, payload: Uint8Array): Promise<void> {
  return log.append([{ header: h, payload }]);
}

/** Batch sizes used by the fixtures: atomic batches of 1, 2 and 3 records. */
const BATCH_SIZES = [1, 2, 3];

function payloadFor(offset: number): Uint8Array {
  // Varied sizes so that records straddle different alignments.
  return Buffer.alloc(17 + ((offset * 37) % 200), offset & 0xff);
}

async function openLog(dir: string, segmentBytes = 1 << 20): Promise<{ log: PartitionLog; offsets: number[] }> {
  const offsets: number[] = [];
  const { log } = await PartitionLog.open(
    { dir, partition: 0, fs: nodeFileSystem, segmentBytes, maxBatchBytes: 1 << 20, onFatal: fatal },
    (r) => offsets.push(r.offset),
  );
  return { log, offsets };
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "vecraft-recovery-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/**
 * Writes `n` records through the real log in atomic batches of 1, 2, 3, 1, ... records.
 * Returns the segment's bytes, each record's end position, and for each record the
 * number of records a recovery must keep if the file ends right after it (complete
 * batches only).
 */
async function buildSegment(dir: string, n: number): Promise<{ bytes: Buffer; ends: number[]; keep: number[]; file: string }> {
  const { log } = await openLog(dir);
  const writes: Promise<void>[] = [];
  const batchEnds: number[] = [];
  for (let o = 1, b = 0; o <= n; b++) {
    const size = Math.min(BATCH_SIZES[b % BATCH_SIZES.length] as number, n - o + 1);
    const recs = [];
    for (let k = 0; k < size; k++, o++) recs.push({ header: header(o), payload: payloadFor(o) });
    writes.push(log.append(recs));
    batchEnds.push(o - 1);
  }
  await Promise.all(writes);
  await log.close();
  const [file] = await readdir(dir);
  const path = join(dir, file as string);
  const bytes = await readFile(path);
  const ends: number[] = [];
  let pos = SEGMENT_HEADER_BYTES;
  for (let o = 1; o <= n; o++) {
    const r = decodeRecordAt(bytes, pos);
    if (!r.ok) throw new Error("fixture did not decode");
    pos += r.record.frameBytes;
    ends.push(pos);
  }
  const keep = ends.map((_, i) => Math.max(0, ...batchEnds.filter((e) => e <= i + 1)));
  return { bytes, ends, keep, file: file as string };
}

/** Records a recovery keeps when the segment is cut at `cut`: complete batches only. */
function keptAt(ends: number[], keep: number[], cut: number): number {
  const whole = ends.filter((e) => e <= cut).length;
  return whole === 0 ? 0 : (keep[whole - 1] as number);
}

describe("record codec", () => {
  it("round-trips every header field and the payload", () => {
    const h = header(42, { type: RecordType.Ddl, epoch: 9, producerId: 2n ** 63n + 5n, producerEpoch: 3, seq: 2 ** 40 });
    const frame = encodeRecord(h, payloadFor(42));
    expect(frame.length % 8).toBe(0);
    const r = decodeRecordAt(frame, 0);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.record).toMatchObject(h);
    expect(Buffer.from(r.record.payload).equals(Buffer.from(payloadFor(42)))).toBe(true);
  });

  it("detects every single-bit flip", () => {
    const frame = encodeRecord(header(3), payloadFor(3));
    const len = frame.readUInt32LE(0) + 8;
    for (let byte = 0; byte < len; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const copy = Buffer.from(frame);
        copy[byte] = (copy[byte] as number) ^ (1 << bit);
        expect(decodeRecordAt(copy, 0).ok).toBe(false);
      }
    }
  });

  it("uses CRC32C (cross-checked against a table implementation)", () => {
    const table = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      table[i] = c >>> 0;
    }
    const reference = (buf: Uint8Array): number => {
      let c = 0xffffffff;
      for (const b of buf) c = (table[(c ^ b) & 0xff] as number) ^ (c >>> 8);
      return (c ^ 0xffffffff) >>> 0;
    };
    for (const s of ["", "123456789", "vecraft journal", "x".repeat(1000)]) {
      expect(crc32c(Buffer.from(s))).toBe(reference(Buffer.from(s)));
    }
    expect(crc32c(Buffer.from("123456789"))).toBe(0xe3069283);
  });
});

describe("segment recovery", () => {
  it("recovers exactly the longest valid prefix when the segment is cut at every byte", async () => {
    const n = 12;
    const { bytes, ends, keep, file } = await buildSegment(join(root, "cut-src"), n);
    // Pure scan at every cut: cheap, so every byte.
    for (let cut = SEGMENT_HEADER_BYTES; cut <= bytes.length; cut++) {
      const expected = keptAt(ends, keep, cut);
      const seen: number[] = [];
      const res = scanSegment(bytes.subarray(0, cut), SEGMENT_HEADER_BYTES, { nextOffset: 1, lastTs: 0n, lastEpoch: 0 }, true, (r) => seen.push(r.offset));
      expect(res.outcome.kind, `cut at ${cut}`).not.toBe("corrupt");
      expect(seen.length, `cut at ${cut}`).toBe(expected);
      expect(res.validEnd).toBe(expected === 0 ? SEGMENT_HEADER_BYTES : ends[expected - 1]);
    }
    // Through the real log on disk, also at every byte: recovery truncates, syncs, and
    // the next append continues at the right offset.
    const dir = join(root, "cut-disk");
    for (let cut = SEGMENT_HEADER_BYTES; cut <= bytes.length; cut++) {
      await rm(dir, { recursive: true, force: true });
      const { mkdir } = await import("node:fs/promises");
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, file), bytes.subarray(0, cut));
      const expected = keptAt(ends, keep, cut);
      const { log, offsets } = await openLog(dir);
      expect(offsets, `cut at ${cut}`).toEqual(Array.from({ length: expected }, (_, i) => i + 1));
      expect(log.commitOffset).toBe(expected);
      if (cut % 97 === 0 || cut === bytes.length) {
        await one(log, header(expected + 1), payloadFor(1));
        const back = await log.read(1, 1000, 1 << 20);
        expect(back.map((r) => r.offset)).toEqual(Array.from({ length: expected + 1 }, (_, i) => i + 1));
      }
      await log.close();
    }
  });

  it("refuses to serve when a record in the middle has a flipped bit", async () => {
    const n = 9;
    const { bytes, ends, file } = await buildSegment(join(root, "flip-src"), n);
    const middle = 6; // record 7 (offset 7), a batch of its own; records 8 and 9 follow
    const start = ends[middle - 1] as number;
    const end = ends[middle] as number;
    // Every bit of the middle record's frame (not its zero padding beyond frameLen).
    const frameEnd = start + 8 + bytes.readUInt32LE(start);
    for (let byte = start; byte < frameEnd; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const copy = Buffer.from(bytes);
        copy[byte] = (copy[byte] as number) ^ (1 << bit);
        const res = scanSegment(copy, SEGMENT_HEADER_BYTES, { nextOffset: 1, lastTs: 0n, lastEpoch: 0 }, true, () => {});
        expect(res.outcome.kind, `flip byte ${byte} bit ${bit}`).toBe("corrupt");
        expect(res.validEnd).toBe(start);
      }
    }
    expect(end).toBeGreaterThan(frameEnd - 8);
    // And through the real log: open fails with DataLoss and nothing is truncated.
    const dir = join(root, "flip-disk");
    const { mkdir } = await import("node:fs/promises");
    await mkdir(dir, { recursive: true });
    const copy = Buffer.from(bytes);
    copy[start + 70] = (copy[start + 70] as number) ^ 0x10;
    await writeFile(join(dir, file), copy);
    await expect(openLog(dir)).rejects.toBeInstanceOf(CorruptLogError);
    expect((await readFile(join(dir, file))).equals(copy)).toBe(true);
  });

  it("treats a flipped bit in the last record as a torn tail", async () => {
    const { bytes, ends } = await buildSegment(join(root, "flip-last"), 5);
    const copy = Buffer.from(bytes);
    const lastStart = ends[3] as number;
    copy[lastStart + 40] = (copy[lastStart + 40] as number) ^ 1;
    const seen: number[] = [];
    const res = scanSegment(copy, SEGMENT_HEADER_BYTES, { nextOffset: 1, lastTs: 0n, lastEpoch: 0 }, true, (r) => seen.push(r.offset));
    expect(res.outcome.kind).toBe("torn");
    // Records 4 and 5 were one atomic batch: with 5 damaged, 4 goes too.
    expect(seen).toEqual([1, 2, 3]);
  });

  it("keeps multi-record batches atomic: a batch cut anywhere is dropped whole", async () => {
    const dir = join(root, "atomic");
    const { log } = await openLog(dir);
    await one(log, header(1), payloadFor(1));
    await log.append([2, 3, 4].map((o) => ({ header: header(o), payload: payloadFor(o) })));
    await log.close();
    const [file] = await readdir(dir);
    const bytes = await readFile(join(dir, file as string));
    // Cut inside the last record of the batch: records 2 and 3 are intact but must go.
    await writeFile(join(dir, file as string), bytes.subarray(0, bytes.length - 10));
    const { log: back, offsets } = await openLog(dir);
    expect(offsets).toEqual([1]);
    expect(back.commitOffset).toBe(1);
    await back.close();
  });

  it("treats a zeroed 512-byte sector inside the last record as torn", async () => {
    const dir = join(root, "sector");
    const { log } = await openLog(dir);
    for (let o = 1; o <= 3; o++) await one(log, header(o), Buffer.alloc(3000, o));
    await log.close();
    const [file] = await readdir(dir);
    const bytes = await readFile(join(dir, file as string));
    let pos = SEGMENT_HEADER_BYTES;
    const starts: number[] = [];
    for (let o = 1; o <= 3; o++) {
      starts.push(pos);
      const r = decodeRecordAt(bytes, pos);
      if (!r.ok) throw new Error("fixture");
      pos += r.record.frameBytes;
    }
    const lastStart = starts[2] as number;
    const sector = Math.ceil((lastStart + 600) / 512) * 512;
    const copy = Buffer.from(bytes);
    copy.fill(0, sector, sector + 512);
    const seen: number[] = [];
    const res = scanSegment(copy, SEGMENT_HEADER_BYTES, { nextOffset: 1, lastTs: 0n, lastEpoch: 0 }, true, (r) => seen.push(r.offset));
    expect(res.outcome.kind).toBe("torn");
    expect(seen).toEqual([1, 2]);
  });

  it("rolls segments, reads across them, and treats damage in a non-last segment as corruption", async () => {
    const dir = join(root, "roll");
    const { log } = await openLog(dir, 4096);
    for (let o = 1; o <= 60; o++) await one(log, header(o), payloadFor(o));
    expect(log.segmentCount).toBeGreaterThan(2);
    const all = [];
    for (let from = 1; from <= 60; ) {
      const got = await log.read(from, 1000, 1 << 20);
      all.push(...got);
      from += got.length;
    }
    expect(all.map((r) => r.offset)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    await log.close();
    const reopened = await openLog(dir, 4096);
    expect(reopened.offsets.length).toBe(60);
    await reopened.log.close();
    const files = (await readdir(dir)).sort();
    // Cut the tail of the first segment: not the last, so it is corruption, not a torn tail.
    const first = join(dir, files[0] as string);
    const size = (await readFile(first)).length;
    await truncate(first, size - 5);
    await expect(openLog(dir, 4096)).rejects.toBeInstanceOf(CorruptLogError);
  });

  it("rejects appends that would break offset or timestamp order", async () => {
    const { log } = await openLog(join(root, "order"));
    await one(log, header(1), payloadFor(1));
    await expect(one(log, header(3), payloadFor(3))).rejects.toThrow(/expected 2/);
    await expect(one(log, header(2, { ts: 1n }), payloadFor(2))).rejects.toThrow(/not above/);
    await expect(log.append([{ header: header(2), payload: payloadFor(2) }, { header: header(4), payload: payloadFor(4) }])).rejects.toThrow(/expected 3/);
    expect(log.lastOffset).toBe(1); // a rejected batch leaves nothing behind
    await log.close();
  });
});
