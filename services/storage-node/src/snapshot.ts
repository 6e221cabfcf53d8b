// Shard snapshots: the sending side (a consistent copy of one replica, streamed as a
// header then chunks) and the receiving side (written into a directory and checked
// against the header's sizes and CRC32C before anyone may use it).
//
// Consistency: the index checkpoint pair (index.usearch + its .json) is hard-linked first,
// in one synchronous step (checkpoints are written synchronously on the same event loop,
// as temp file + rename, so no checkpoint can interleave and a linked inode never changes
// afterwards; linking costs nothing however large the index), THEN SQLite is backed up. The index therefore covers an
// offset at or below the SQLite copy's applied offset, which VectorIndex.restore repairs
// by re-adding the rows changed after it.
import { copyFileSync, existsSync, linkSync, mkdirSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { DataLossError, DeadlineExceededError, FailedPreconditionError } from "@vecraft/common";
import { CollectionSchema, type GetShardSnapshotResponseSchema, type ShardSnapshotHeader, type StorageService } from "@vecraft/rpc";
import { crc32c } from "@node-rs/crc32";
import type { Shard } from "./shard.js";

export const DEFAULT_CHUNK_BYTES = 1 << 20;
/** How long a snapshot stream may go without a message before the receiver gives up on it. */
export const DEFAULT_SNAPSHOT_IDLE_MS = 30_000;
export const SQLITE_FILE = "shard.sqlite";
export const INDEX_FILE = "index.usearch";
/** The only names a snapshot may carry (a header naming others is rejected). */
const FILE_NAMES = new Set([SQLITE_FILE, INDEX_FILE, `${INDEX_FILE}.json`]);

type SnapshotMessage = MessageInitShape<typeof GetShardSnapshotResponseSchema>;

/** A fresh directory name under `root` for transfer scratch space. */
export function scratchDir(root: string, prefix: string): string {
  return join(root, `.${prefix}-${randomBytes(6).toString("hex")}`);
}

async function fileCrc(path: string): Promise<{ size: number; crc: number }> {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.allocUnsafe(DEFAULT_CHUNK_BYTES);
    let crc = 0;
    let size = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, size);
      if (bytesRead === 0) break;
      crc = crc32c(buf.subarray(0, bytesRead), crc);
      size += bytesRead;
    }
    return { size, crc };
  } finally {
    await fh.close();
  }
}

/**
 * Streams a snapshot of `shard`: header, then every file in chunks of at most
 * `chunkBytes`. The scratch copy lives in `scratch` and is removed when the stream ends,
 * fails or is cancelled.
 */
export async function* serveSnapshot(
  shard: Shard,
  opts: { readonly scratch: string; readonly nodeId: string; readonly uid: string; readonly chunkBytes: number; readonly signal: AbortSignal },
): AsyncGenerator<SnapshotMessage> {
  const dir = opts.scratch;
  mkdirSync(dir, { recursive: true });
  try {
    const names: string[] = [SQLITE_FILE];
    const index = join(shard.store.dir, INDEX_FILE);
    // Synchronous on purpose: no checkpoint can run between the two links.
    if (existsSync(index) && existsSync(`${index}.json`)) {
      linkOrCopy(index, join(dir, INDEX_FILE));
      linkOrCopy(`${index}.json`, join(dir, `${INDEX_FILE}.json`));
      names.push(INDEX_FILE, `${INDEX_FILE}.json`);
    }
    const applied = await shard.store.backup(join(dir, SQLITE_FILE));
    opts.signal.throwIfAborted();
    const files: { name: string; size: number; crc: number }[] = [];
    for (const name of names) files.push({ name, ...(await fileCrc(join(dir, name))) });
    yield {
      part: {
        case: "header",
        value: {
          collection: shard.collection,
          shard: shard.shard,
          partition: shard.partition,
          uid: opts.uid,
          createdOffset: BigInt(shard.store.identity.createdOffset),
          spec: toBinary(CollectionSchema, shard.spec.collection),
          applied: { partition: shard.partition, offset: BigInt(applied.offset), ts: applied.ts },
          files: files.map((f) => ({ name: f.name, size: BigInt(f.size), crc32c: f.crc })),
          node: opts.nodeId,
        },
      },
    };
    for (const [i, f] of files.entries()) {
      const fh = await open(join(dir, f.name), "r");
      try {
        let offset = 0;
        while (offset < f.size) {
          opts.signal.throwIfAborted();
          const data = Buffer.allocUnsafe(Math.min(opts.chunkBytes, f.size - offset));
          const { bytesRead } = await fh.read(data, 0, data.length, offset);
          if (bytesRead === 0) throw new DataLossError(`snapshot file ${f.name} shrank while being sent: ${offset} of ${f.size} bytes read`);
          yield { part: { case: "chunk", value: { file: i, offset: BigInt(offset), data: data.subarray(0, bytesRead) } } };
          offset += bytesRead;
        }
      } finally {
        await fh.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A hard link (the scratch dir is on the replica's filesystem); a copy if linking is refused. */
function linkOrCopy(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to);
  }
}

/**
 * Receives a snapshot into `dir` (created here) and checks every file's size and
 * CRC32C. Throws on anything short or corrupt (DataLossError), on a snapshot of another
 * shard (FailedPreconditionError), and when the peer sends nothing for `idleMs`
 * (DeadlineExceededError: a stalled peer must not hold the bootstrap forever); the caller
 * removes `dir` then.
 */
export async function receiveSnapshot(
  client: Client<typeof StorageService>,
  req: { readonly collection: string; readonly shard: number; readonly uid: string; readonly chunkBytes?: number; readonly idleMs?: number },
  dir: string,
  progress: { onHeader(totalBytes: number): void; onBytes(n: number): void },
  signal: AbortSignal,
): Promise<ShardSnapshotHeader> {
  mkdirSync(dir, { recursive: true });
  let header: ShardSnapshotHeader | undefined;
  const written: { size: number; crc: number; fh: Awaited<ReturnType<typeof open>> | undefined }[] = [];
  const idleMs = req.idleMs ?? DEFAULT_SNAPSHOT_IDLE_MS;
  const idle = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => idle.abort(new DeadlineExceededError(`snapshot of ${req.collection}/${req.shard}: the peer sent nothing for ${idleMs} ms`)), idleMs);
  };
  const where = `snapshot of ${req.collection}/${req.shard}`;
  try {
    arm();
    const stream = client.getShardSnapshot({ collection: req.collection, shard: req.shard, uid: req.uid, chunkBytes: req.chunkBytes ?? 0 }, { signal: AbortSignal.any([signal, idle.signal]) });
    for await (const msg of stream) {
      arm();
      if (msg.part.case === "header") {
        if (header) throw new DataLossError(`${where}: the stream sent a second header`);
        header = msg.part.value;
        if (header.uid !== req.uid || header.collection !== req.collection || header.shard !== req.shard) {
          throw new FailedPreconditionError(`snapshot is of ${header.collection}/${header.shard} uid ${header.uid}, asked for ${req.collection}/${req.shard} uid ${req.uid}`);
        }
        if (!header.files.some((f) => f.name === SQLITE_FILE)) throw new DataLossError(`${where}: the header lists no ${SQLITE_FILE}`);
        for (const f of header.files) {
          if (!FILE_NAMES.has(f.name)) throw new DataLossError(`${where}: the header names an unexpected file ${JSON.stringify(f.name)}`);
          written.push({ size: 0, crc: 0, fh: await open(join(dir, f.name), "wx") });
        }
        progress.onHeader(header.files.reduce((n, f) => n + Number(f.size), 0));
      } else if (msg.part.case === "chunk") {
        if (!header) throw new DataLossError(`${where}: the stream sent a chunk before its header`);
        const c = msg.part.value;
        const w = written[c.file];
        const f = header.files[c.file];
        if (!w?.fh || !f) throw new DataLossError(`${where}: a chunk names file ${c.file}, the header lists ${header.files.length}`);
        if (Number(c.offset) !== w.size) throw new DataLossError(`${where}: chunk of ${f.name} at offset ${c.offset}, expected offset ${w.size}`);
        if (w.size + c.data.length > Number(f.size)) throw new DataLossError(`${where}: file ${f.name} is longer than the ${f.size} bytes its header says (got ${w.size + c.data.length})`);
        await w.fh.write(c.data, 0, c.data.length, w.size);
        w.size += c.data.length;
        w.crc = crc32c(c.data, w.crc);
        progress.onBytes(c.data.length);
      }
    }
    if (!header) throw new DataLossError(`${where}: the stream ended before its header`);
    for (const [i, f] of header.files.entries()) {
      const w = written[i] as (typeof written)[number];
      await w.fh?.sync();
      if (w.size !== Number(f.size)) throw new DataLossError(`${where}: file ${f.name} is short: received ${w.size} of the ${f.size} bytes its header says`);
      if (w.crc !== f.crc32c) throw new DataLossError(`${where}: file ${f.name} CRC32C mismatch: expected ${f.crc32c} (header), got ${w.crc}`);
    }
    return header;
  } catch (e) {
    if (idle.signal.aborted && !signal.aborted) throw idle.signal.reason as Error;
    throw e;
  } finally {
    clearTimeout(timer);
    for (const w of written) await w.fh?.close().catch(() => undefined);
  }
}
