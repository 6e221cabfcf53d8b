// Segment files: `<baseOffset, 20 digits>.seg`, a 64-byte header, then frames.
// Scanning a segment is pure (bytes in, verdict out) so that recovery can be tested at
// every byte position without touching the disk.
import { crc32c } from "@node-rs/crc32";
import { decodeRecordAt, FRAME_PREFIX_BYTES, RECORD_MAGIC, RECORD_VERSION, type DecodedRecord } from "./codec.js";

export const SEGMENT_MAGIC = Buffer.from("VCRFTSEG", "ascii");
export const SEGMENT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 64;
const SEGMENT_SUFFIX = ".seg";

export interface SegmentHeader {
  readonly partition: number;
  readonly baseOffset: number;
  /** 16 bytes identifying the data directory that wrote the segment (JOURNAL-PROTOCOL §2.11). */
  readonly incarnation: Uint8Array;
}

export function segmentFileName(baseOffset: number): string {
  return `${String(baseOffset).padStart(20, "0")}${SEGMENT_SUFFIX}`;
}

export function parseSegmentFileName(name: string): number | undefined {
  if (!name.endsWith(SEGMENT_SUFFIX)) return undefined;
  const digits = name.slice(0, -SEGMENT_SUFFIX.length);
  if (!/^\d{20}$/.test(digits)) return undefined;
  const n = Number(digits);
  return Number.isSafeInteger(n) && n >= 1 ? n : undefined;
}

export function encodeSegmentHeader(h: SegmentHeader): Buffer {
  const buf = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(buf, 0);
  buf.writeUInt32LE(SEGMENT_VERSION, 8);
  buf.writeUInt32LE(h.partition, 12);
  buf.writeBigUInt64LE(BigInt(h.baseOffset), 16);
  buf.set(h.incarnation.subarray(0, 16), 24);
  buf.writeUInt32LE(crc32c(buf.subarray(0, 60)), 60);
  return buf;
}

export function decodeSegmentHeader(buf: Uint8Array): SegmentHeader | string {
  if (buf.length < SEGMENT_HEADER_BYTES) return `segment header is ${buf.length} bytes, expected ${SEGMENT_HEADER_BYTES}`;
  const b = Buffer.from(buf.buffer, buf.byteOffset, SEGMENT_HEADER_BYTES);
  if (!b.subarray(0, 8).equals(SEGMENT_MAGIC)) return "segment header has the wrong magic";
  if (crc32c(b.subarray(0, 60)) !== b.readUInt32LE(60)) return "segment header checksum mismatch";
  const version = b.readUInt32LE(8);
  if (version !== SEGMENT_VERSION) return `segment version ${version} is not supported`;
  return {
    partition: b.readUInt32LE(12),
    baseOffset: Number(b.readBigUInt64LE(16)),
    incarnation: Uint8Array.from(b.subarray(24, 40)),
  };
}

/** What the scan expects of the next record, carried from segment to segment. */
export interface ScanState {
  nextOffset: number;
  lastTs: bigint;
  lastEpoch: number;
}

export type ScanOutcome =
  | { kind: "clean" }
  /** Invalid bytes at the end that no valid record follows: a write cut short by a crash. */
  | { kind: "torn"; at: number; reason: string }
  /** An invalid record with valid ones after it: never truncated, the replica stops. */
  | { kind: "corrupt"; at: number; reason: string };

export interface ScanResult {
  /** Byte position just after the last valid record. */
  readonly validEnd: number;
  readonly outcome: ScanOutcome;
}

/**
 * Scans the frames of a segment (the bytes after its header start at `start`), calling
 * `onRecord` for each valid record in order. A record is valid when its frame decodes,
 * its CRC matches, and it continues the sequence: offset = nextOffset, ts > lastTs,
 * epoch >= lastEpoch. At the first invalid record the scan looks ahead for any valid
 * record that continues the log; finding one means mid-log corruption, otherwise the
 * invalid bytes are a torn tail. `isLastSegment` false turns any invalid record into
 * corruption: only the last segment can have been cut by a crash. Records of a
 * multi-entry batch are reported only once the whole batch is there; a batch cut short
 * at the end of the last segment is torn as a whole (it was never acknowledged).
 */
export function scanSegment(
  buf: Uint8Array,
  start: number,
  state: ScanState,
  isLastSegment: boolean,
  onRecord: (rec: DecodedRecord, position: number) => void,
): ScanResult {
  // Records of an atomic batch are held back until its last record has been seen.
  let batch: { start: number; recs: [DecodedRecord, number][]; saved: ScanState } | undefined;
  const incompleteBatch = (): ScanResult => {
    const b = batch as NonNullable<typeof batch>;
    Object.assign(state, b.saved);
    const reason = `the atomic batch starting at byte ${b.start} (offset ${b.saved.nextOffset}) is incomplete`;
    return { validEnd: b.start, outcome: isLastSegment ? { kind: "torn", at: b.start, reason } : notLast(b.start, reason) };
  };
  let pos = start;
  while (pos < buf.length) {
    const res = decodeRecordAt(buf, pos);
    let problem: string | undefined;
    if (!res.ok) {
      if (res.reason === "short" && isZeroFrom(buf, pos)) {
        // Zeros to the end: nothing was ever written here (or a preallocated tail).
        if (batch) return incompleteBatch();
        return { validEnd: pos, outcome: isLastSegment ? { kind: "clean" } : notLast(pos, "trailing zeros") };
      }
      problem = `record at byte ${pos}: ${describe(res.reason)}`;
    } else {
      const r = res.record;
      const expectedRemaining = batch ? (batch.recs[batch.recs.length - 1] as [DecodedRecord, number])[0].batchRemaining - 1 : undefined;
      if (r.offset !== state.nextOffset) problem = `record at byte ${pos} has offset ${r.offset}, expected ${state.nextOffset}`;
      else if (r.ts <= state.lastTs) problem = `record at byte ${pos} (offset ${r.offset}) has ts ${r.ts} <= previous ${state.lastTs}`;
      else if (r.epoch < state.lastEpoch) problem = `record at byte ${pos} (offset ${r.offset}) has epoch ${r.epoch} < previous ${state.lastEpoch}`;
      else if (expectedRemaining !== undefined && r.batchRemaining !== expectedRemaining) {
        problem = `record at byte ${pos} (offset ${r.offset}) breaks its batch: ${r.batchRemaining} entries said to follow, expected ${expectedRemaining}`;
      } else {
        if (!batch && r.batchRemaining > 0) batch = { start: pos, recs: [], saved: { ...state } };
        state.nextOffset = r.offset + 1;
        state.lastTs = r.ts;
        state.lastEpoch = r.epoch;
        if (batch) {
          batch.recs.push([r, pos]);
          if (r.batchRemaining === 0) {
            for (const [rec, at] of batch.recs) onRecord(rec, at);
            batch = undefined;
          }
        } else {
          onRecord(r, pos);
        }
        pos += r.frameBytes;
        continue;
      }
    }
    if (!isLastSegment) return { validEnd: batch?.start ?? pos, outcome: notLast(pos, problem) };
    const later = findLaterValidRecord(buf, pos + 8, state.nextOffset);
    if (later !== undefined) {
      return {
        validEnd: batch?.start ?? pos,
        outcome: { kind: "corrupt", at: pos, reason: `${problem}; a valid record (offset ${later.offset}) follows at byte ${later.position}` },
      };
    }
    if (batch) return incompleteBatch();
    return { validEnd: pos, outcome: { kind: "torn", at: pos, reason: problem } };
  }
  if (batch) return incompleteBatch();
  return { validEnd: pos, outcome: { kind: "clean" } };
}

function notLast(at: number, reason: string): ScanOutcome {
  return { kind: "corrupt", at, reason: `${reason} (in a segment that is not the last)` };
}

function describe(reason: string): string {
  switch (reason) {
    case "short":
      return "frame runs past the end of the segment";
    case "length":
      return "impossible frame length";
    case "crc":
      return "checksum mismatch";
    default:
      return "bad magic, version or type";
  }
}

function isZeroFrom(buf: Uint8Array, pos: number): boolean {
  for (let i = pos; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * Looks for a frame at any 8-aligned position after `from` that decodes with a valid CRC
 * and whose offset is at or after `minOffset`. Magic and version are checked before the
 * CRC so that the scan stays linear in practice.
 */
function findLaterValidRecord(buf: Uint8Array, from: number, minOffset: number): { offset: number; position: number } | undefined {
  const aligned = (from + 7) & ~7;
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  for (let q = aligned; q + FRAME_PREFIX_BYTES + 4 <= buf.length; q += 8) {
    if (view.readUInt16LE(q + FRAME_PREFIX_BYTES) !== RECORD_MAGIC) continue;
    if (view.readUInt8(q + FRAME_PREFIX_BYTES + 2) !== RECORD_VERSION) continue;
    const res = decodeRecordAt(buf, q);
    if (res.ok && res.record.offset >= minOffset) return { offset: res.record.offset, position: q };
  }
  return undefined;
}
