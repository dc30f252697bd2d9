// How many endpoints the model server loads at once. Loads run side by side, a few at a time
// (each takes memory for the model's bytes and a core or more for onnxruntime to build its
// sessions), and models of up to SMALL_MODEL_BYTES have lanes of their own: a small model is
// ready as soon as it is loaded, never queued behind a large one that takes seconds.

/** Models at most this large load in the small lane. */
export const SMALL_MODEL_BYTES = 16 * 1024 * 1024;

/** A counting semaphore whose waiters go smallest first, so many endpoints at start-up fill in from the quick ones. */
class Lane {
  private running = 0;
  private readonly waiting: Array<{ size: number; start: () => void }> = [];

  constructor(private readonly limit: number) {}

  acquire(size: number): Promise<() => void> {
    return new Promise((resolve) => {
      const start = () => {
        this.running++;
        let isReleased = false;
        resolve(() => {
          if (isReleased) return;
          isReleased = true;
          this.running--;
          this.waiting.shift()?.start();
        });
      };
      if (this.running < this.limit) return start();
      const at = this.waiting.findIndex((w) => w.size > size);
      this.waiting.splice(at === -1 ? this.waiting.length : at, 0, { size, start });
    });
  }
}

export class LoadSlots {
  private readonly small: Lane;
  private readonly large: Lane;

  /** `perLane`: loads at once in each lane (small models, large models). */
  constructor(perLane = 2) {
    this.small = new Lane(perLane);
    this.large = new Lane(perLane);
  }

  /** Waits for a slot for a model of `bytes` (null: unknown, loaded as a large one); call the result when done. */
  acquire(bytes: number | null | undefined): Promise<() => void> {
    const isSmall = bytes != null && bytes <= SMALL_MODEL_BYTES;
    return (isSmall ? this.small : this.large).acquire(bytes ?? Number.MAX_SAFE_INTEGER);
  }
}
