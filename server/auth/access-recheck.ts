import { AppError } from "../errors";

// For a live stream that has no durable events to replay (joint readings): the caller's access
// is asked again at once when it may have changed (the access-change channel), when the stream
// starts listening (a change between authentication and then is not missed), and every few
// seconds besides — a change announced while the hub's connection was down is caught then.

export interface StreamAccessOptions {
  /** Why the caller may no longer read the stream, or null while it may. */
  whyNotAllowed?: () => Promise<string | null>;
  /** Subscribes to "the caller's access may have changed"; returns the unsubscribe. */
  watchAccess?: (changed: () => void) => () => void;
}

/** How often access is asked again without being told it changed. */
export const LIVE_ACCESS_EVERY_MS = 5000;

export class AccessRecheck {
  private dueAt = 0;
  private readonly unwatch: (() => void) | undefined;

  constructor(
    private readonly opts: StreamAccessOptions & { everyMs?: number; what: string },
    /** Wakes the stream's wait, so a change is acted on at once. */
    onChange: () => void,
  ) {
    this.unwatch = opts.watchAccess?.(() => {
      this.dueAt = 0;
      onChange();
    });
  }

  /** Milliseconds until the next check is due (the longest a stream's wait may last). */
  msUntilDue(): number {
    return this.opts.whyNotAllowed ? Math.max(0, this.dueAt - Date.now()) : Infinity;
  }

  /** Asks again when due; throws FORBIDDEN, saying why, when the caller lost access. */
  async check(): Promise<void> {
    if (!this.opts.whyNotAllowed || Date.now() < this.dueAt) return;
    // Each next check comes a little earlier or later (±20 %): streams opened together (every
    // client reconnecting after a restart) do not all ask the database in the same instant.
    this.dueAt = Date.now() + (this.opts.everyMs ?? LIVE_ACCESS_EVERY_MS) * (0.8 + 0.4 * Math.random());
    const why = await this.opts.whyNotAllowed();
    if (why) throw new AppError("FORBIDDEN", `${this.opts.what} stopped: ${why}`);
  }

  stop(): void {
    this.unwatch?.();
  }
}
