// Where the CLI's output goes. main.ts passes process.stdout/stderr; tests pass buffers.

/** The part of a stream the CLI writes to. */
export interface Writer {
  write(chunk: string): unknown;
  /** A terminal: progress bars and colourless tables sized to `columns`. */
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface CliIO {
  /** Results: tables, JSON. */
  readonly stdout: Writer;
  /** Progress, warnings and errors, so that stdout stays parseable. */
  readonly stderr: Writer;
  /** Prints a line to stdout. */
  out(line?: string): void;
  /** Prints a line to stderr. */
  err(line?: string): void;
}

export function createIO(stdout: Writer, stderr: Writer): CliIO {
  return {
    stdout,
    stderr,
    out: (line = "") => void stdout.write(`${line}\n`),
    err: (line = "") => void stderr.write(`${line}\n`),
  };
}

/** A Writer that keeps what it is given, for tests and for capturing. */
export class BufferWriter implements Writer {
  readonly chunks: string[] = [];
  constructor(
    readonly isTTY = false,
    readonly columns = 100,
  ) {}
  write(chunk: string): boolean {
    this.chunks.push(chunk);
    return true;
  }
  get text(): string {
    return this.chunks.join("");
  }
}
