import { setTimeout as sleep } from "node:timers/promises";
import { AgentError } from "./config";

// How the agent tries again when the portal does not answer (refused, cut, timed out) or answers
// with a server error: a bounded number of tries in a row, each after a longer wait with jitter
// (so agents cut off together by a portal restart do not all come back in the same second), one
// line per try saying what failed and when the next try is. A refusal (4xx) is never tried
// again: it ends with the portal's message.

const BASE_DELAYS_MS = [1000, 2000, 4000, 8000, 15_000, 30_000];

/** The wait before try `attempt + 1` (attempt from 1): half the base delay, plus up to as much again. */
export function retryDelayMs(attempt: number, random: () => number = Math.random): number {
  const base = BASE_DELAYS_MS[Math.min(attempt, BASE_DELAYS_MS.length) - 1];
  return Math.round(base / 2 + (random() * base) / 2);
}

/** A call to the portal that failed; `status` 0 means no answer at all. */
export class PortalError extends AgentError {
  constructor(
    message: string,
    readonly status: number,
    /** What went wrong, short, for the line that says a try failed. */
    readonly reason: string,
  ) {
    super(message);
    this.name = "PortalError";
  }
}

/** No answer, or a server error that may pass (507, a full disk, and 501 will not). */
export const isTransient = (error: unknown): error is PortalError => error instanceof PortalError && (error.status === 0 || (error.status >= 500 && error.status !== 501 && error.status !== 507));

const UNREACHABLE = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN"]);

/** Why a request got no answer: its error code (or that it timed out), and a short phrase for a person. */
export function noAnswer(error: unknown, timeoutMs: number): { code: string; reason: string } {
  const e = error as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === "TimeoutError" || e.code === "ETIMEDOUT" || e.cause?.code === "UND_ERR_CONNECT_TIMEOUT") {
    const code = `no answer within ${Math.round(timeoutMs / 1000)} s`;
    return { code, reason: `the portal gave ${code}` };
  }
  const code = e.cause?.code ?? e.code ?? e.cause?.message ?? e.message ?? String(error);
  return { code, reason: UNREACHABLE.has(code) ? `cannot reach the portal (${code})` : `the connection to the portal broke (${code})` };
}

export interface RetryOptions {
  /** What is being done, to start each line: "lab/pick episode 3: registering". */
  what: string;
  retries: number;
  log: (line: string) => void;
}

/** Runs `attempt` until it succeeds, fails for good, or has failed `retries + 1` times in a row. */
export async function withRetries<T>(attempt: () => Promise<T>, { what, retries, log }: RetryOptions): Promise<T> {
  for (let failures = 0; ; ) {
    try {
      return await attempt();
    } catch (error) {
      if (!isTransient(error)) throw error;
      failures++;
      if (failures > retries) throw new PortalError(`${error.message} (gave up after ${failures} tries)`, error.status, error.reason);
      const wait = retryDelayMs(failures);
      log(`${what}: ${error.reason}; trying again in ${(wait / 1000).toFixed(1)} s (${failures} of ${retries})`);
      await sleep(wait);
    }
  }
}
