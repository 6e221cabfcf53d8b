// The on-disk record format. Every field that recovery relies on (offset, epoch, ts,
// producer, seq) sits inside the CRC so that a scan can tell a torn tail from corruption
// in the middle of the log (JOURNAL-PROTOCOL.md §2.10).
//
//   frame   = frameLen u32 | crc32c u32 | header (56 bytes) | payload | zero pad to 8
//   header  = magic u16 @0 | version u8 @2 | type u8 @3 | epoch u32 @4 | offset u64 @8 |
//             ts u64 @16 | producerId u64 @24 | producerEpoch u32 @32 | reserved u32 @36 |
//             seq u64 @40 | payloadLen u32 @48 | batchRemaining u32 @52
//
// frameLen counts header + payload (not the pad); the CRC covers the same bytes.
// batchRemaining makes multi-entry appends atomic: it counts the entries that follow in
// the same Append, so recovery can drop a batch whose tail a crash cut off.
// All integers are little-endian. Frames start 8-byte aligned.
import { crc32c } from "@node-rs/crc32";

export const RECORD_MAGIC = 0x5643; // "VC"
export const RECORD_VERSION = 1;
export const FRAME_PREFIX_BYTES = 8;
export const HEADER_BYTES = 56;
/** Upper bound on one payload; anything larger is rejected before it is framed. */
export const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;

/** Entry types as stored on disk; the values match the EntryType enum of journal.proto. */
export const RecordType = {
  Data: 1,
  Tick: 2,
  EpochStart: 3,
  Ddl: 4,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

export interface RecordHeader {
  readonly type: RecordType;
  readonly epoch: number;
  readonly offset: number;
  readonly ts: bigint;
  readonly producerId: bigint;
  readonly producerEpoch: number;
  readonly seq: number;
  /** Entries after this one that belong to the same atomic batch (0 for the last). */
  readonly batchRemaining: number;
}

export interface DecodedRecord extends RecordHeader {
  readonly payload: Uint8Array;
  /** Bytes the frame occupies on disk, padding included. */
  readonly frameBytes: number;
}

export function paddedFrameBytes(payloadLen: number): number {
  const raw = FRAME_PREFIX_BYTES + HEADER_BYTES + payloadLen;
  return (raw + 7) & ~7;
}

function isRecordType(v: number): v is RecordType {
  return v >= RecordType.Data && v <= RecordType.Ddl;
}

export function encodeRecord(h: RecordHeader, payload: Uint8Array): Buffer {
  if (payload.length > MAX_PAYLOAD_BYTES) {
    throw new RangeError(`payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
  }
  const total = paddedFrameBytes(payload.length);
  const buf = Buffer.alloc(total);
  const frameLen = HEADER_BYTES + payload.length;
  buf.writeUInt32LE(frameLen, 0);
  const p = FRAME_PREFIX_BYTES;
  buf.writeUInt16LE(RECORD_MAGIC, p);
  buf.writeUInt8(RECORD_VERSION, p + 2);
  buf.writeUInt8(h.type, p + 3);
  buf.writeUInt32LE(h.epoch, p + 4);
  buf.writeBigUInt64LE(BigInt(h.offset), p + 8);
  buf.writeBigUInt64LE(h.ts, p + 16);
  buf.writeBigUInt64LE(h.producerId, p + 24);
  buf.writeUInt32LE(h.producerEpoch, p + 32);
  buf.writeBigUInt64LE(BigInt(h.seq), p + 40);
  buf.writeUInt32LE(payload.length, p + 48);
  buf.writeUInt32LE(h.batchRemaining, p + 52);
  buf.set(payload, FRAME_PREFIX_BYTES + HEADER_BYTES);
  buf.writeUInt32LE(crc32c(buf.subarray(FRAME_PREFIX_BYTES, FRAME_PREFIX_BYTES + frameLen)), 4);
  return buf;
}

/** Why a frame at some position failed to decode; recovery decides what that means. */
export type DecodeFailure =
  | "short" // not even a length prefix, or the frame runs past the end of the data
  | "length" // the length field is impossible
  | "crc" // checksum mismatch
  | "header"; // checksum fine but magic/version/type are wrong (a bug or a foreign file)

export type DecodeResult = { ok: true; record: DecodedRecord } | { ok: false; reason: DecodeFailure };

/**
 * Decodes the frame starting at `pos` in `buf`. Never throws on bad data: the caller
 * classifies failures (torn tail vs corruption).
 */
export function decodeRecordAt(buf: Uint8Array, pos: number): DecodeResult {
  const remaining = buf.length - pos;
  if (remaining < FRAME_PREFIX_BYTES) return { ok: false, reason: "short" };
  const view = Buffer.from(buf.buffer, buf.byteOffset + pos, remaining);
  const frameLen = view.readUInt32LE(0);
  if (frameLen < HEADER_BYTES || frameLen > HEADER_BYTES + MAX_PAYLOAD_BYTES) {
    return frameLen === 0 ? { ok: false, reason: "short" } : { ok: false, reason: "length" };
  }
  // The padding is written with the frame, so a frame without all of it is torn too.
  if (paddedFrameBytes(frameLen - HEADER_BYTES) > remaining) return { ok: false, reason: "short" };
  const stored = view.readUInt32LE(4);
  const body = view.subarray(FRAME_PREFIX_BYTES, FRAME_PREFIX_BYTES + frameLen);
  if (crc32c(body) !== stored) return { ok: false, reason: "crc" };
  const magic = body.readUInt16LE(0);
  const version = body.readUInt8(2);
  const type = body.readUInt8(3);
  const payloadLen = body.readUInt32LE(48);
  if (magic !== RECORD_MAGIC || version !== RECORD_VERSION || !isRecordType(type) || payloadLen !== frameLen - HEADER_BYTES) {
    return { ok: false, reason: "header" };
  }
  const offset = body.readBigUInt64LE(8);
  const seq = body.readBigUInt64LE(40);
  return {
    ok: true,
    record: {
      type,
      epoch: body.readUInt32LE(4),
      offset: Number(offset),
      ts: body.readBigUInt64LE(16),
      producerId: body.readBigUInt64LE(24),
      producerEpoch: body.readUInt32LE(32),
      seq: Number(seq),
      batchRemaining: body.readUInt32LE(52),
      payload: body.subarray(HEADER_BYTES),
      frameBytes: paddedFrameBytes(payloadLen),
    },
  };
}
