import { setTimeout as sleep } from "node:timers/promises";
import type { JointSample } from "../server/hardware/hardware.schemas";

// Joint samples a command emits go to the portal as live data, not as a record: batched so one
// POST carries many, one POST at a time so a slow portal is never flooded, and never waited on
// by the command. When the portal falls behind, the oldest samples are dropped: a person
// watching the arm wants where it is now.

export interface SampleBatcherOptions {
  /** At most one POST this often. */
  everyMs: number;
  /** At most this many samples per POST (the message schema's limit). */
  perMessage: number;
  /** Samples kept while the portal is slow; beyond, the oldest go. */
  buffered: number;
}

export const SAMPLE_BATCHING: SampleBatcherOptions = { everyMs: 20, perMessage: 64, buffered: 512 };

export class SampleBatcher {
  private buffer: JointSample[] = [];
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private lastSentAt = -Infinity;
  private isClosed = false;
  /** Samples dropped because the portal was slow. */
  dropped = 0;

  constructor(
    private readonly send: (samples: JointSample[]) => Promise<void>,
    private readonly opts: SampleBatcherOptions = SAMPLE_BATCHING,
  ) {}

  push(sample: JointSample): void {
    if (this.isClosed) return;
    this.buffer.push(sample);
    const over = this.buffer.length - this.opts.buffered;
    if (over > 0) {
      this.buffer.splice(0, over);
      this.dropped += over;
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.isClosed || this.timer || this.inFlight || !this.buffer.length) return;
    const wait = Math.max(0, this.lastSentAt + this.opts.everyMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, wait);
  }

  private flush(): void {
    if (!this.buffer.length) return;
    const batch = this.buffer.splice(0, this.opts.perMessage);
    this.lastSentAt = performance.now();
    // A lost batch is lost: the next one carries newer readings.
    this.inFlight = this.send(batch)
      .catch(() => {})
      .finally(() => {
        this.inFlight = null;
        this.schedule();
      });
  }

  /** Sends what is left (samples pushed later are ignored), giving the portal at most `timeoutMs`. */
  async close(timeoutMs = 1000): Promise<void> {
    this.isClosed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if (this.inFlight) {
        const stop = new AbortController();
        await Promise.race([this.inFlight, sleep(deadline - performance.now(), undefined, { signal: stop.signal }).catch(() => {})]);
        stop.abort();
        continue;
      }
      if (!this.buffer.length) return;
      this.flush();
    }
    this.dropped += this.buffer.length;
    this.buffer = [];
  }
}
