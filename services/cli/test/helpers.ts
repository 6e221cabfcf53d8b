// Test helpers: the CLI run in-process against the fake server, temp dirs, and writers
// of .npy and .fvecs fixtures.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createVecraftClient } from "@vecraft/client";
import { BufferWriter, runCli } from "../src/index.js";
import type { CliDeps } from "../src/index.js";
import { FakeServer } from "./fake-server.js";

export interface RunResult {
  code: number;
  out: string;
  err: string;
}

export interface RunOptions extends Partial<CliDeps> {
  /** stderr is a terminal (progress bar). */
  tty?: boolean;
}

/** Runs `vecraft ...argv` in-process against `fake`, capturing stdout and stderr. */
export async function vecraft(fake: FakeServer | undefined, argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const stdout = new BufferWriter();
  const stderr = new BufferWriter(opts.tty ?? false);
  const { tty: _tty, ...deps } = opts;
  const code = await runCli(argv, {
    stdout,
    stderr,
    env: {},
    ...(fake !== undefined
      ? {
          createClient: (o) =>
            createVecraftClient({ ...o, transport: fake.transport, retry: { ...(o.retry !== false ? o.retry : {}), initialMs: 1, maxMs: 5 } }),
        }
      : {}),
    ...deps,
  });
  return { code, out: stdout.text, err: stderr.text };
}

export function newFake(): FakeServer {
  return new FakeServer();
}

export async function tempDir(): Promise<{ path: string; file: (name: string) => string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), "vecraft-cli-"));
  return { path, file: (name) => join(path, name), cleanup: () => rm(path, { recursive: true, force: true }) };
}

export interface NpyOptions {
  dtype?: "<f4" | "<f8" | ">f4" | "<i4";
  version?: 1 | 2 | 3;
  fortran?: boolean;
  /** Overrides the shape in the header (e.g. to lie about the row count). */
  shape?: readonly number[];
}

/** Writes a .npy file the way numpy.save does: magic, version, padded header, C-order data. */
export async function writeNpy(path: string, rows: readonly (readonly number[])[], opts: NpyOptions = {}): Promise<void> {
  const dtype = opts.dtype ?? "<f4";
  const version = opts.version ?? 1;
  const dim = rows[0]?.length ?? 0;
  const shape = opts.shape ?? [rows.length, dim];
  const dict = `{'descr': '${dtype}', 'fortran_order': ${opts.fortran === true ? "True" : "False"}, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  const lenBytes = version === 1 ? 2 : 4;
  const pre = 6 + 2 + lenBytes;
  // The data starts at a multiple of 64 bytes; the header ends with a newline.
  const total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  const header = dict.padEnd(total - pre - 1, " ") + "\n";
  const head = Buffer.alloc(pre);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]).copy(head, 0);
  head[6] = version;
  head[7] = 0;
  if (version === 1) head.writeUInt16LE(header.length, 8);
  else head.writeUInt32LE(header.length, 8);
  const item = dtype.endsWith("8") ? 8 : 4;
  const data = Buffer.alloc(rows.length * dim * item);
  rows.forEach((row, r) =>
    row.forEach((x, c) => {
      const at = (r * dim + c) * item;
      if (dtype === "<f8") data.writeDoubleLE(x, at);
      else if (dtype === ">f4") data.writeFloatBE(x, at);
      else if (dtype === "<i4") data.writeInt32LE(x, at);
      else data.writeFloatLE(x, at);
    }),
  );
  await writeFile(path, Buffer.concat([head, Buffer.from(header, version === 3 ? "utf8" : "latin1"), data]));
}

/** Writes an .fvecs file: per vector an int32 dimension then float32 values, little-endian. */
export async function writeFvecs(path: string, rows: readonly (readonly number[])[]): Promise<void> {
  const parts = rows.map((row) => {
    const b = Buffer.alloc(4 + 4 * row.length);
    b.writeInt32LE(row.length, 0);
    row.forEach((x, i) => b.writeFloatLE(x, 4 + 4 * i));
    return b;
  });
  await writeFile(path, Buffer.concat(parts));
}

/** Collects an async iterable. */
export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
