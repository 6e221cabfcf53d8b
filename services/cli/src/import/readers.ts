// Streaming readers: lines with their byte offsets, and exact-size binary reads. Files are
// read in chunks; nothing ever holds the whole file.
import { createReadStream } from "node:fs";
import { InputError } from "../errors.js";

const CHUNK_BYTES = 1 << 20;

export interface Line {
  /** The text without its line break (LF or CRLF), UTF-8 decoded. */
  readonly text: string;
  /** 1-based. */
  readonly line: number;
  /** Byte offset just after the line break. */
  readonly end: number;
}

function openStream(path: string, signal: AbortSignal | undefined): AsyncIterable<Buffer> {
  return createReadStream(path, { highWaterMark: CHUNK_BYTES, ...(signal !== undefined ? { signal } : {}) }) as AsyncIterable<Buffer>;
}

/** The lines of a file, split on LF in the bytes (safe in UTF-8), with a leading BOM removed. */
export async function* readLines(path: string, signal?: AbortSignal): AsyncGenerator<Line, void, undefined> {
  let carry: Buffer = Buffer.alloc(0);
  let carryStart = 0;
  let line = 0;
  const decode = (buf: Buffer, start: number, stop: number): string => {
    let text = buf.toString("utf8", start, stop > start && buf[stop - 1] === 0x0d ? stop - 1 : stop);
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    return text;
  };
  for await (const chunk of openStream(path, signal)) {
    const buf = carry.length === 0 ? chunk : Buffer.concat([carry, chunk]);
    let pos = 0;
    for (let nl = buf.indexOf(0x0a, pos); nl !== -1; nl = buf.indexOf(0x0a, pos)) {
      line++;
      yield { text: decode(buf, pos, nl), line, end: carryStart + nl + 1 };
      pos = nl + 1;
    }
    carry = buf.subarray(pos);
    carryStart += pos;
  }
  if (carry.length > 0) {
    line++;
    yield { text: decode(carry, 0, carry.length), line, end: carryStart + carry.length };
  }
}

/** Exact-size reads from a file, for fixed-layout binary formats. */
export class BinaryReader {
  readonly #it: AsyncIterator<Buffer>;
  #buf: Buffer = Buffer.alloc(0);
  #pos = 0;
  /** Bytes handed out so far. */
  offset = 0;

  constructor(path: string, signal?: AbortSignal) {
    this.#it = openStream(path, signal)[Symbol.asyncIterator]();
  }

  /**
   * The next `n` bytes, or undefined at the end of the file. A file that ends inside the
   * `n` bytes is an InputError naming `what`.
   */
  async read(n: number, what: string): Promise<Buffer | undefined> {
    while (this.#buf.length - this.#pos < n) {
      const next = await this.#it.next();
      if (next.done === true) {
        const left = this.#buf.length - this.#pos;
        if (left === 0) return undefined;
        throw new InputError(`${what}: the file ends after ${left} of its ${n} bytes (truncated?)`);
      }
      this.#buf = this.#pos === this.#buf.length ? next.value : Buffer.concat([this.#buf.subarray(this.#pos), next.value]);
      this.#pos = 0;
    }
    const out = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    this.offset += n;
    return out;
  }

  async close(): Promise<void> {
    await this.#it.return?.();
  }
}
