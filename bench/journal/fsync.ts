// The disk's floor: how many `write 1 KiB + fdatasync` round trips it does per second,
// measured with synchronous calls (no event loop, no RPC) on a file in the same
// directory the journal will use. Group commit is what lets the journal go faster than
// this in entries per second; nothing can go faster in fsyncs per second. A second loop
// with 256 KiB writes (about one group commit of the 100-entry scenarios) gives the
// durable bandwidth.
import { closeSync, fdatasyncSync, openSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { LatencyRecorder, type LatencySummary } from "./stats.js";

export interface FsyncFloor {
  /** "append": each write extends the file (what the journal's segments do). "overwrite": a preallocated file is rewritten in place. */
  readonly mode: "append" | "overwrite";
  /** Bytes written before each fdatasync. */
  readonly blockBytes: number;
  readonly seconds: number;
  readonly syncs: number;
  readonly syncsPerSec: number;
  readonly mibPerSec: number;
  readonly latency: LatencySummary;
}

/** Hard cap on iterations, whatever the disk does. */
const MAX_SYNCS = 1_000_000;
/** Size of the preallocated file for the overwrite mode (positions wrap around). */
const PREALLOCATED_BYTES = 16 * 1024 * 1024;

export function measureFsyncFloor(dir: string, seconds: number, mode: FsyncFloor["mode"], blockBytes = 1024): FsyncFloor {
  const path = join(dir, `fsync-floor-${mode}-${blockBytes}.bin`);
  const fd = openSync(path, "w+");
  const block = Buffer.alloc(blockBytes, 0xab);
  const rec = new LatencyRecorder(MAX_SYNCS);
  try {
    if (mode === "overwrite") {
      const chunk = Buffer.alloc(1024 * 1024);
      for (let pos = 0; pos < PREALLOCATED_BYTES; pos += chunk.length) writeSync(fd, chunk, 0, chunk.length, pos);
      fdatasyncSync(fd);
    }
    const start = performance.now();
    const end = start + seconds * 1000;
    let pos = 0;
    let now = start;
    while (now < end && rec.count < MAX_SYNCS) {
      const t0 = now;
      writeSync(fd, block, 0, blockBytes, pos);
      fdatasyncSync(fd);
      now = performance.now();
      rec.add(now - t0);
      pos += blockBytes;
      if (mode === "overwrite" && pos >= PREALLOCATED_BYTES) pos = 0;
    }
    const elapsed = (now - start) / 1000;
    return {
      mode,
      blockBytes,
      seconds: elapsed,
      syncs: rec.count,
      syncsPerSec: rec.count / elapsed,
      mibPerSec: (rec.count * blockBytes) / elapsed / 2 ** 20,
      latency: rec.summary(),
    };
  } finally {
    closeSync(fd);
    unlinkSync(path);
  }
}
