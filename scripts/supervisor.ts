import { spawn } from "node:child_process";

// Keeps the processes `npm start` runs alive: one that stops on its own is started again,
// after a pause that doubles with each failure in a row (and resets once a run has lasted),
// and everything stops only when asked to.

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Something running that the supervisor watches: it ends when `exited` resolves. */
export interface Unit {
  /** Shown in the log when it starts, e.g. its pid. */
  description?: string;
  exited: Promise<ExitInfo>;
  stop(): Promise<void>;
}

export interface SuperviseOptions<U extends Unit = Unit> {
  name: string;
  start: () => Promise<U> | U;
  log: (message: string) => void;
  /** First pause before a restart; it doubles with each failure in a row, up to `maxDelayMs`. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** A run that lasts this long was not a crash loop: the next pause starts again from the first. */
  stableAfterMs?: number;
  /** Called after every successful restart (not after the first start). */
  onRestart?: (unit: U) => void;
}

export const describeExit = ({ code, signal }: ExitInfo) => (signal ? `killed by ${signal}` : `exit code ${code}`);

export class Supervisor<U extends Unit = Unit> {
  private current: U | null = null;
  private isStopping = false;
  private failuresInARow = 0;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  /** Restarts so far. */
  restarts = 0;

  constructor(private readonly opts: SuperviseOptions<U>) {}

  get name(): string {
    return this.opts.name;
  }

  /** The running unit, or null between a crash and its restart. */
  get unit(): U | null {
    return this.current;
  }

  /** Starts the unit; a failure of this first start is thrown, later ones are retried. */
  async start(): Promise<U> {
    const unit = await this.opts.start();
    this.current = unit;
    this.announce(unit, false);
    this.loop = this.watch(unit, Date.now());
    return unit;
  }

  /** Stops the unit and any restart waiting; it is not started again. */
  async stop(): Promise<void> {
    this.isStopping = true;
    this.wake?.();
    const unit = this.current;
    if (unit) await unit.stop();
    await this.loop;
  }

  private announce(unit: Unit, isRestart: boolean): void {
    const what = unit.description ? ` (${unit.description})` : "";
    if (isRestart) this.opts.log(`${this.opts.name} restarted${what}`);
    else this.opts.log(`${this.opts.name} started${what}`);
  }

  private delay(): number {
    return Math.min(this.opts.maxDelayMs ?? 30_000, (this.opts.initialDelayMs ?? 1_000) * 2 ** (this.failuresInARow - 1));
  }

  private async watch(unit: U, startedAt: number): Promise<void> {
    for (;;) {
      const exit = await unit.exited;
      this.current = null;
      if (this.isStopping) return;
      if (Date.now() - startedAt >= (this.opts.stableAfterMs ?? 60_000)) this.failuresInARow = 0;
      this.failuresInARow++;
      let next: U | null = null;
      this.opts.log(`${this.opts.name} stopped unexpectedly (${describeExit(exit)}); restarting it in ${formatDelay(this.delay())}${this.failuresInARow > 1 ? ` (failure ${this.failuresInARow} in a row)` : ""}`);
      while (!next) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.delay());
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = null;
        if (this.isStopping) return;
        try {
          next = await this.opts.start();
        } catch (error) {
          this.failuresInARow++;
          this.opts.log(`${this.opts.name} could not be started again: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}; trying again in ${formatDelay(this.delay())}`);
        }
      }
      if (this.isStopping) {
        await next.stop();
        return;
      }
      this.current = next;
      this.restarts++;
      this.announce(next, true);
      this.opts.onRestart?.(next);
      unit = next;
      startedAt = Date.now();
    }
  }
}

function formatDelay(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

export interface ChildCommand {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Each line of its output, already prefixed with `[name] `. */
  output?: (line: string, stream: "stdout" | "stderr") => void;
  /** How long a child may take to stop after SIGTERM before it is killed. */
  stopTimeoutMs?: number;
}

/** Starts a command as a Unit: its output prefixed with its name, stopped with SIGTERM then SIGKILL. */
export function startChild({ name, command, args, env, cwd, output, stopTimeoutMs = 15_000 }: ChildCommand): Unit {
  const child = spawn(command, args, { env, cwd, stdio: ["ignore", "pipe", "pipe"] });
  const write = output ?? ((line: string, stream: "stdout" | "stderr") => (stream === "stdout" ? process.stdout : process.stderr).write(`${line}\n`));
  for (const stream of ["stdout", "stderr"] as const) {
    let partial = "";
    child[stream]!.setEncoding("utf8");
    child[stream]!.on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) if (line) write(`[${name}] ${line}`, stream);
    });
    child[stream]!.on("end", () => partial && write(`[${name}] ${partial}`, stream));
  }
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    // A command that cannot be started at all (missing binary) ends here instead.
    child.once("error", () => child.pid === undefined && resolve({ code: 127, signal: null }));
  });
  return {
    description: `pid ${child.pid}`,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), stopTimeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
