import { Worker } from "node:worker_threads";
import type * as ort from "onnxruntime-node";

// Worker threads holding one session each: up to `size` requests run at once. The workers
// start together (`create`, then `fill`) or one by one as runs find none idle: an endpoint whose
// requests run on the main thread (inline-session.ts) needs its workers only for the overflow,
// and idle threads each holding a session still cost memory and slow the main thread a little.

export interface RawTensor {
  type: ort.Tensor.Type;
  data: ort.Tensor.DataType;
  dims: readonly number[];
}

type Reply =
  | { type: "ready" }
  | { type: "load-failed"; message: string }
  | { type: "result"; id: number; outputs: Record<string, RawTensor> }
  | { type: "timed"; id: number; ms: number }
  | { type: "failed"; id: number; message: string }
  | { type: "released" };

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (o: never) => void; reject: (e: Error) => void }>;
}

/** The buffers of these tensors, when they can be handed over whole (not views into a larger or shared one). */
function transferable(feeds: Record<string, RawTensor>): ArrayBuffer[] {
  const buffers: ArrayBuffer[] = [];
  for (const name in feeds) {
    const data = feeds[name].data;
    if (!ArrayBuffer.isView(data) || !(data.buffer instanceof ArrayBuffer)) continue;
    if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength || buffers.includes(data.buffer)) continue;
    buffers.push(data.buffer);
  }
  return buffers;
}

const workerUrl = new URL("./session-worker.mjs", import.meta.url);
/** After a worker failed to start for a run, runs wait for busy workers this long before another is tried. */
const RETRY_START_MS = 30_000;

export class SessionPool {
  private readonly idle: Slot[];
  private readonly starting = new Set<Promise<Slot>>();
  /** Runs waiting for a busy worker, when no more could start. */
  private readonly waiters: Array<{ resolve: (slot: Slot) => void; reject: (error: Error) => void }> = [];
  /** When a worker last failed to start while a run needed it (performance.now()). */
  private failedStartAt = -Infinity;
  private nextId = 1;
  private isReleased = false;
  /** The model's bytes, kept while workers may still start. */
  private bytes: Uint8Array | null;

  private constructor(
    private readonly slots: Slot[],
    bytes: Uint8Array,
    private readonly size: number,
    private readonly threads: number,
  ) {
    this.idle = [...slots];
    this.bytes = slots.length < size ? bytes : null;
  }

  /**
   * Starts `start` workers (all `size` by default) and loads the model in each; rejects with
   * onnxruntime's reason when it cannot. The others start when runs need them, or on `fill`.
   */
  static async create(bytes: Uint8Array, { size, threads, start = size }: { size: number; threads: number; start?: number }): Promise<SessionPool> {
    const started = await startAll(bytes, threads, Math.max(1, Math.min(start, size)));
    return new SessionPool(started, bytes, size, threads);
  }

  /** Workers loaded so far. */
  get started(): number {
    return this.slots.length;
  }

  /** Starts every worker not started yet; rejects (keeping the ones loaded) when one cannot load. */
  async fill(): Promise<void> {
    const missing = this.size - this.slots.length - this.starting.size;
    if (missing <= 0 || !this.bytes) return;
    const starts = Array.from({ length: missing }, () => startSlot(this.bytes!, this.threads));
    for (const start of starts) this.starting.add(start);
    const results = await Promise.allSettled(starts);
    for (const start of starts) this.starting.delete(start);
    for (const r of results) if (r.status === "fulfilled" && this.join(r.value)) this.handOver(r.value);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  /**
   * Runs on an idle worker; the caller keeps to `size` at once. With none idle, one more starts
   * (up to `size`); when it cannot (none may start, or one failed to within the last 30 s — the
   * machine's memory, most likely), the run waits for a busy one instead. The feeds' buffers are
   * transferred to the worker: the caller must not use them afterwards.
   */
  async run(feeds: Record<string, RawTensor>, outputs: string[]): Promise<Record<string, RawTensor>> {
    if (this.isReleased) throw new Error("The endpoint's sessions have been released");
    const slot = this.idle.pop() ?? (await this.another());
    const id = this.nextId++;
    try {
      return await new Promise<Record<string, RawTensor>>((resolve, reject) => {
        slot.pending.set(id, { resolve, reject });
        slot.worker.postMessage({ type: "run", id, feeds, outputs }, transferable(feeds));
      });
    } finally {
      this.handOver(slot);
    }
  }

  /** A free worker goes to the run waiting longest, or idle. */
  private handOver(slot: Slot): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(slot);
    else this.idle.push(slot);
  }

  /** A worker that has loaded joins the pool (the bytes go once all have); false after a release, having stopped it. */
  private join(slot: Slot): boolean {
    this.slots.push(slot);
    if (this.slots.length >= this.size) this.bytes = null;
    if (this.isReleased) void stopSlot(slot);
    return !this.isReleased;
  }

  /** A worker for a run that found none idle: a new one, or the next to finish. */
  private async another(): Promise<Slot> {
    const mayStart = this.bytes !== null && this.slots.length + this.starting.size < this.size && performance.now() - this.failedStartAt >= RETRY_START_MS;
    if (mayStart) {
      const starting = startSlot(this.bytes!, this.threads);
      this.starting.add(starting);
      try {
        const slot = await starting;
        if (!this.join(slot)) throw new Error("The endpoint's sessions have been released");
        return slot; // this run's, so not idle
      } catch (error) {
        if (this.isReleased) throw error;
        this.failedStartAt = performance.now();
      } finally {
        this.starting.delete(starting);
      }
      // The busy worker may have finished while this one failed to start.
      const freed = this.idle.pop();
      if (freed) return freed;
    }
    return new Promise<Slot>((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /**
   * Median milliseconds of up to `runs` runs of these feeds on one worker after a warm-up run
   * (the pool must be idle); three runs over `stopAboveMs` end it early, returning at least that.
   */
  async time(feeds: Record<string, RawTensor>, outputs: string[], { runs, stopAboveMs }: { runs: number; stopAboveMs: number }): Promise<number> {
    const slot = this.slots[0];
    const id = this.nextId++;
    return new Promise<number>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ type: "time", id, feeds, outputs, runs, stopAboveMs });
    });
  }

  /** Releases every session (`session.release()`) and stops the workers. */
  async release(): Promise<void> {
    this.isReleased = true;
    this.bytes = null;
    for (const waiter of this.waiters.splice(0)) waiter.reject(new Error("The endpoint's sessions have been released"));
    // Workers still loading are stopped as they finish (join).
    await Promise.all([...this.slots.map(stopSlot), ...[...this.starting].map((s) => s.catch(() => {}))]);
  }
}

/** Releases a worker's session and stops the worker. */
async function stopSlot(slot: Slot): Promise<void> {
  const released = new Promise<void>((resolve) => {
    slot.worker.once("message", () => resolve());
    slot.worker.once("exit", () => resolve());
  });
  slot.worker.postMessage({ type: "release" });
  await Promise.race([released, new Promise((r) => setTimeout(r, 2_000).unref())]);
  await slot.worker.terminate();
}

/** `count` workers loading the model together; when one fails, the others are stopped and its reason thrown. */
async function startAll(bytes: Uint8Array, threads: number, count: number): Promise<Slot[]> {
  const results = await Promise.allSettled(Array.from({ length: count }, () => startSlot(bytes, threads)));
  const failed = results.find((r) => r.status === "rejected");
  if (failed) {
    await Promise.all(results.map((r) => (r.status === "fulfilled" ? r.value.worker.terminate() : null)));
    throw (failed as PromiseRejectedResult).reason;
  }
  return results.map((r) => (r as PromiseFulfilledResult<Slot>).value);
}

function startSlot(bytes: Uint8Array, threads: number): Promise<Slot> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(workerUrl, { workerData: { bytes, threads } });
    const slot: Slot = { worker, pending: new Map() };
    worker.on("message", (m: Reply) => {
      if (m.type === "ready") resolve(slot);
      else if (m.type === "load-failed") {
        reject(new Error(m.message));
        void worker.terminate();
      } else if (m.type === "result" || m.type === "timed" || m.type === "failed") {
        const waiter = slot.pending.get(m.id);
        slot.pending.delete(m.id);
        if (m.type === "result") waiter?.resolve(m.outputs as never);
        else if (m.type === "timed") waiter?.resolve(m.ms as never);
        else waiter?.reject(new Error(m.message));
      }
    });
    worker.on("error", (error) => {
      reject(error);
      for (const w of slot.pending.values()) w.reject(error);
      slot.pending.clear();
    });
    worker.on("exit", () => {
      reject(new Error("The session worker stopped while loading the model"));
      for (const w of slot.pending.values()) w.reject(new Error("The session worker stopped"));
      slot.pending.clear();
    });
  });
}
