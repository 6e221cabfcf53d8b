// Import progress on stderr: a redrawn bar on a terminal, plain periodic lines otherwise
// (logs, CI). Percent is by records when the file says how many, else by bytes.
import { count, duration } from "../format.js";
import type { Writer } from "../io.js";

export interface ProgressState {
  records: number;
  /** Bytes of the file covered by acknowledged batches. */
  bytesDone: number;
  totalBytes: number;
  totalRecords: number | undefined;
  /** Since the import started. */
  elapsedMs: number;
}

/** The fraction done in [0, 1], or undefined when the size is unknown. */
export function fractionDone(s: ProgressState): number | undefined {
  if (s.totalRecords !== undefined && s.totalRecords > 0) return Math.min(1, s.records / s.totalRecords);
  if (s.totalBytes > 0) return Math.min(1, s.bytesDone / s.totalBytes);
  return undefined;
}

function parts(s: ProgressState): { pct: string; rate: string; eta: string; fraction: number | undefined } {
  const fraction = fractionDone(s);
  const seconds = s.elapsedMs / 1000;
  const perSecond = seconds > 0 ? s.records / seconds : 0;
  const etaSeconds = fraction !== undefined && fraction > 0 ? (seconds * (1 - fraction)) / fraction : undefined;
  return {
    fraction,
    pct: fraction === undefined ? "?" : `${(fraction * 100).toFixed(1)}%`,
    rate: `${count(Math.round(perSecond))} records/s`,
    eta: etaSeconds === undefined ? "ETA ?" : `ETA ${duration(etaSeconds)}`,
  };
}

export function progressLine(s: ProgressState): string {
  const p = parts(s);
  const of = s.totalRecords !== undefined ? `/${count(s.totalRecords)}` : "";
  return `imported ${count(s.records)}${of} records (${p.pct}), ${p.rate}, ${p.eta}`;
}

const BAR_WIDTH = 24;

export function progressBar(s: ProgressState): string {
  const p = parts(s);
  const filled = Math.round((p.fraction ?? 0) * BAR_WIDTH);
  const bar = "█".repeat(filled) + "░".repeat(BAR_WIDTH - filled);
  return `[${bar}] ${p.pct.padStart(6)}  ${count(s.records)} records  ${p.rate}  ${p.eta}`;
}

export class ProgressReporter {
  #lastAt = Number.NEGATIVE_INFINITY;
  #drawn = false;

  constructor(
    private readonly writer: Writer,
    private readonly intervalMs: number,
    private readonly now: () => number,
  ) {}

  get tty(): boolean {
    return this.writer.isTTY === true;
  }

  /** Reports progress, at most every 100 ms on a terminal and every `intervalMs` otherwise. */
  update(s: ProgressState): void {
    const t = this.now();
    if (t - this.#lastAt < (this.tty ? 100 : this.intervalMs)) return;
    this.#lastAt = t;
    this.#draw(s);
  }

  /** Ends the bar (final state, then a line break); plain mode prints nothing more. */
  finish(s: ProgressState | undefined): void {
    if (!this.tty) return;
    if (s !== undefined) this.#draw(s);
    if (this.#drawn) this.writer.write("\n");
    this.#drawn = false;
  }

  /** Clears the bar so that a message can be printed on its own line. */
  interrupt(): void {
    if (this.tty && this.#drawn) {
      this.writer.write("\r\x1b[2K");
      this.#drawn = false;
    }
  }

  #draw(s: ProgressState): void {
    if (this.tty) {
      this.writer.write(`\r\x1b[2K${progressBar(s)}`);
      this.#drawn = true;
    } else {
      this.writer.write(`${progressLine(s)}\n`);
    }
  }
}
