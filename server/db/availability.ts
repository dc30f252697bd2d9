import pg from "pg";
import { AppError } from "../errors";

// Telling "the database is down or restarting" apart from a query's own failure, and saying
// so once per outage instead of once per request.

// Connection-level SQLSTATEs: class 08 (connection exception), 57P01-03 (the server shutting
// down, crashed, or still starting), 53300 (too many connections).
const UNAVAILABLE_SQLSTATES = /^(08\d{3}|57P0[1-3]|53300)$/;
const PRISMA_CODES = new Set(["P1001", "P1002", "P1017", "P2024"]);
const UNAVAILABLE_KINDS = new Set(["DatabaseNotReachable", "ConnectionClosed", "SocketTimeout", "TooManyConnections"]);
// pg's, libpq's and Prisma's own words for a connection that is gone.
const UNAVAILABLE_MESSAGES = /Can't reach database server|Connection terminated unexpectedly|terminating connection due to|Client has encountered a connection error and is not queryable|the database system is (starting up|shutting down|in recovery mode|not yet accepting connections)|Server has closed the connection|server closed the connection unexpectedly|timeout exceeded when trying to connect/i;
const SOCKET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH"]);

/**
 * Whether an error means the database could not be reached (down, restarting, refusing), not
 * that a query failed. Bare socket errors (ECONNREFUSED…) count only with `socketErrors`, for
 * code that talks to nothing but the database: elsewhere they are as likely a device's or a
 * host's.
 */
export function isDatabaseUnavailable(error: unknown, { socketErrors = false }: { socketErrors?: boolean } = {}, depth = 0): boolean {
  if (!error || typeof error !== "object" || depth > 5) return false;
  const e = error as { code?: unknown; kind?: unknown; message?: unknown; cause?: unknown; meta?: { driverAdapterError?: { cause?: unknown } } };
  if (typeof e.code === "string" && (PRISMA_CODES.has(e.code) || UNAVAILABLE_SQLSTATES.test(e.code) || (socketErrors && SOCKET_CODES.has(e.code)))) return true;
  if (typeof e.kind === "string" && UNAVAILABLE_KINDS.has(e.kind)) return true;
  if (typeof e.message === "string" && UNAVAILABLE_MESSAGES.test(e.message)) return true;
  const inner = [e.meta?.driverAdapterError?.cause, e.cause, ...(error instanceof AggregateError ? error.errors : [])];
  return inner.some((i) => isDatabaseUnavailable(i, { socketErrors }, depth + 1));
}

/** The database cannot be reached right now: a 503, worth trying again shortly. */
export class DatabaseUnavailableError extends AppError {
  constructor(message = "Gantry cannot reach its database right now; try again in a moment") {
    super("INTERNAL", message);
    this.name = "DatabaseUnavailableError";
  }
  override get status() {
    return 503;
  }
}

/** The first line of an error's message, without Prisma's "Invalid … invocation" preamble. */
export function shortReason(error: unknown): string {
  const message = (error as { message?: unknown } | null)?.message;
  const text = typeof message === "string" ? message : String(error);
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l && !/^Invalid `.*` invocation/.test(l) && !/^(→|\d+ )/.test(l));
  return (lines.at(-1) ?? text).replace(/^Raw query failed\. Code: `[^`]*`\. Message: `(.*)`$/, "$1").slice(0, 300);
}

/**
 * Says once that the database cannot be reached and once that it is back, however many
 * requests or timers fail in between.
 */
export class OutageLog {
  private since: number | null = null;
  private failures = 0;

  constructor(
    private readonly what: string,
    private readonly log: (message: string) => void,
  ) {}

  get isDown(): boolean {
    return this.since !== null;
  }

  /** Records a failure; only the first of an outage is logged. */
  failed(error: unknown): void {
    this.failures++;
    if (this.since !== null) return;
    this.since = Date.now();
    this.log(`${this.what}: cannot reach the database (${shortReason(error)}); carrying on and retrying, and saying here when it is back`);
  }

  /** Records a success; logs the end of an outage, if there was one. */
  recovered(): void {
    if (this.since === null) return;
    const seconds = Math.round((Date.now() - this.since) / 1000);
    this.log(`${this.what}: the database is reachable again after ${seconds} s (${this.failures} failed attempt${this.failures === 1 ? "" : "s"} meanwhile)`);
    this.since = null;
    this.failures = 0;
  }
}

/**
 * A pg Pool whose connect() waits out a database that is down or restarting (with backoff, up
 * to `patienceMs`) instead of failing at once, so that work written through it (a queue's
 * bookkeeping, say) lands once the database is back rather than being lost. `stop()` ends the
 * waiting, for a process that is shutting down.
 */
export class PatientPool extends pg.Pool {
  private isStopped = false;

  constructor(
    config: pg.PoolConfig,
    private readonly patience: { patienceMs?: number; onUnavailable?: (error: unknown) => void } = {},
  ) {
    super(config);
  }

  // pg's own overloads: with a callback, as pg calls it itself; without, a promise.
  override connect(): Promise<pg.PoolClient>;
  override connect(callback: (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void): void;
  override connect(callback?: (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void): Promise<pg.PoolClient> | void {
    if (callback) return super.connect(callback);
    return this.connectPatiently();
  }

  private async connectPatiently(): Promise<pg.PoolClient> {
    const deadline = Date.now() + (this.patience.patienceMs ?? 10 * 60_000);
    for (let attempt = 0; ; attempt++) {
      try {
        return await super.connect();
      } catch (error) {
        if (this.isStopped || !isDatabaseUnavailable(error, { socketErrors: true }) || Date.now() > deadline) throw error;
        this.patience.onUnavailable?.(error);
        await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2)));
      }
    }
  }

  /** Stops waiting for the database: connects fail at once from now on. */
  stop(): void {
    this.isStopped = true;
  }
}
