// One child process of a local cluster: spawned with its output appended to a log file,
// ready when a real HTTP request says so (/readyz, or etcd's /health), stoppable with
// SIGTERM then SIGKILL after a grace period, restartable with the same arguments (same
// port, same data). An exit nobody asked for is reported through `onExit`.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readSync, fstatSync } from "node:fs";
import type { Role } from "./roles.js";

export interface ProcessSpec {
  readonly name: string;
  readonly role: Role;
  readonly url: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly logFile: string;
  readonly dataDir: string | undefined;
  /** The URL that answers 200 once the process can serve. */
  readonly readyUrl: string;
  /** etcd's /health answers 200 with `{"health":"false"}` while it has no leader. */
  readonly readyBody?: RegExp;
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Whether the launcher (stop, kill, restart) caused it. */
  readonly expected: boolean;
}

/** A process of the cluster, as tests and the CLI hold it. */
export interface ClusterProcess {
  readonly name: string;
  readonly role: Role;
  /** http://127.0.0.1:<port>; the same across restarts. */
  readonly url: string;
  readonly logFile: string;
  readonly dataDir: string | undefined;
  /** The current pid; undefined while it is not running. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Sends `signal` (default SIGKILL) and waits until the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** Stops it if it runs, then starts it again with the same arguments and waits until ready. */
  restart(options?: { signal?: AbortSignal }): Promise<void>;
  /** The last `lines` lines of its log. */
  logTail(lines?: number): string;
}

export class ProcessStartError extends Error {
  override name = "ProcessStartError";
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** The last `lines` lines of a file (reads at most its last 64 KiB). */
export function tailFile(path: string, lines = 20): string {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const size = fstatSync(fd).size;
    const len = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf.toString("utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    // No log yet (the process never started): nothing to show.
    return "";
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export class ManagedProcess implements ClusterProcess {
  readonly name: string;
  readonly role: Role;
  readonly url: string;
  readonly logFile: string;
  readonly dataDir: string | undefined;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  /** Set before the launcher signals the child, so that its exit is not "unexpected". */
  #expectExit = false;

  constructor(
    readonly spec: ProcessSpec,
    private readonly options: {
      readyTimeoutMs: number;
      stopGraceMs: number;
      onExit: (p: ClusterProcess, info: ExitInfo) => void;
    },
  ) {
    this.name = spec.name;
    this.role = spec.role;
    this.url = spec.url;
    this.logFile = spec.logFile;
    this.dataDir = spec.dataDir;
  }

  get pid(): number | undefined {
    return this.running ? this.#child?.pid : undefined;
  }

  get running(): boolean {
    const c = this.#child;
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  logTail(lines = 20): string {
    return tailFile(this.logFile, lines);
  }

  /** Spawns the process and waits until it is ready; on failure it is killed and the error names it. */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.running) return;
    const log = openSync(this.logFile, "a");
    let child: ChildProcess;
    try {
      // Its own process group: a Ctrl-C in the terminal reaches the launcher only, which
      // then stops the processes in order (gateways first, etcd last).
      child = spawn(this.spec.command, [...this.spec.args], { stdio: ["ignore", log, log], env: this.spec.env, detached: true });
    } finally {
      closeSync(log);
    }
    this.#child = child;
    this.#expectExit = false;
    let exitInfo: ExitInfo | undefined;
    let ready = false;
    this.#exited = new Promise((resolve) => {
      child.once("exit", (code, sig) => {
        exitInfo = { code, signal: sig, expected: this.#expectExit };
        // A failed start is reported by start() itself, with the log's tail.
        if (ready) this.options.onExit(this, exitInfo);
        resolve();
      });
    });
    const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
    try {
      await this.#waitReady(signal, () => exitInfo, spawnError);
      ready = true;
    } catch (e) {
      await this.kill("SIGKILL");
      throw e;
    }
  }

  async #waitReady(signal: AbortSignal | undefined, exited: () => ExitInfo | undefined, spawnError: Promise<Error>): Promise<void> {
    let failed: Error | undefined;
    void spawnError.then((e) => (failed = e));
    const deadline = Date.now() + this.options.readyTimeoutMs;
    let last = "no answer yet";
    for (;;) {
      if (failed !== undefined) throw new ProcessStartError(`${this.name}: cannot run ${this.spec.command}: ${failed.message}`);
      const info = exited();
      if (info !== undefined) {
        const how = info.signal !== null ? `was killed by ${info.signal}` : `exited with code ${info.code}`;
        throw new ProcessStartError(`${this.name} ${how} before it was ready (log: ${this.logFile}); its last lines:\n${this.logTail()}`);
      }
      try {
        const res = await fetch(this.spec.readyUrl, { signal: AbortSignal.timeout(2_000) });
        const body = await res.text();
        if (res.status === 200 && (this.spec.readyBody === undefined || this.spec.readyBody.test(body))) return;
        last = `${this.spec.readyUrl} answered ${res.status} ${body.trim()}`;
      } catch (e) {
        // Not listening yet (or too slow to answer): try again until the deadline.
        last = `${this.spec.readyUrl}: ${e instanceof Error ? e.message : String(e)}`;
      }
      if (Date.now() > deadline) {
        throw new ProcessStartError(
          `${this.name} was not ready within ${this.options.readyTimeoutMs} ms (${last}; log: ${this.logFile}); its last lines:\n${this.logTail()}`,
        );
      }
      await sleep(100, signal);
    }
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const c = this.#child;
    if (c === undefined || !this.running) return;
    this.#expectExit = true;
    c.kill(signal);
    await this.#exited;
  }

  async stop(graceMs = this.options.stopGraceMs): Promise<void> {
    const c = this.#child;
    if (c === undefined || !this.running) return;
    this.#expectExit = true;
    c.kill("SIGTERM");
    const timer = setTimeout(() => c.kill("SIGKILL"), graceMs);
    try {
      await this.#exited;
    } finally {
      clearTimeout(timer);
    }
  }

  async restart(options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.stop();
    await this.start(options.signal);
  }

  /** For the launcher's exit hook: SIGKILL without waiting (a synchronous 'exit' handler cannot wait). */
  killNow(): void {
    if (!this.running) return;
    this.#expectExit = true;
    this.#child?.kill("SIGKILL");
  }
}
