// The log's view of the disk: the few calls it makes, behind an interface so that tests
// can inject faults (an fsync that fails with EIO, a crash that loses unsynced bytes)
// while production uses node:fs directly.
import { promises as fsp } from "node:fs";

export interface LogFile {
  /** Writes all buffers at `position`, looping over partial writes. */
  writev(buffers: readonly Uint8Array[], position: number): Promise<void>;
  /** Reads exactly `length` bytes at `position` (fewer only at end of file). */
  read(position: number, length: number): Promise<Buffer>;
  datasync(): Promise<void>;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export interface LogFileSystem {
  /** Opens an existing file for reading and writing. */
  open(path: string): Promise<LogFile>;
  /** Creates a new file (fails if it exists). */
  create(path: string): Promise<LogFile>;
  readdir(dir: string): Promise<string[]>;
  mkdirp(dir: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** fsync on a directory, so that created, renamed and removed names are durable. */
  syncDir(dir: string): Promise<void>;
  exists(path: string): Promise<boolean>;
}

class NodeLogFile implements LogFile {
  constructor(private readonly fh: fsp.FileHandle) {}

  async writev(buffers: readonly Uint8Array[], position: number): Promise<void> {
    let pending = buffers.filter((b) => b.length > 0);
    let pos = position;
    while (pending.length > 0) {
      const { bytesWritten } = await this.fh.writev(pending, pos);
      pos += bytesWritten;
      pending = dropWritten(pending, bytesWritten);
    }
  }

  async read(position: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, done, length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done === length ? buf : buf.subarray(0, done);
  }

  datasync(): Promise<void> {
    return this.fh.datasync();
  }

  truncate(length: number): Promise<void> {
    return this.fh.truncate(length);
  }

  async size(): Promise<number> {
    return (await this.fh.stat()).size;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** After a partial writev, the buffers (or buffer tails) still to write. */
export function dropWritten(buffers: readonly Uint8Array[], written: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = written;
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}

export const nodeFileSystem: LogFileSystem = {
  async open(path) {
    return new NodeLogFile(await fsp.open(path, "r+"));
  },
  async create(path) {
    return new NodeLogFile(await fsp.open(path, "wx+"));
  },
  readdir: (dir) => fsp.readdir(dir),
  async mkdirp(dir) {
    await fsp.mkdir(dir, { recursive: true });
  },
  rename: (from, to) => fsp.rename(from, to),
  unlink: (path) => fsp.unlink(path),
  async syncDir(dir) {
    // O_RDONLY on a directory is enough for fsync on Linux (libuv#1185).
    const d = await fsp.open(dir, "r");
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  },
  async exists(path) {
    try {
      await fsp.access(path);
      return true;
    } catch {
      // access() failing is the answer, not an error to report.
      return false;
    }
  },
};
