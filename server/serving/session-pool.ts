import { Worker } from "node:worker_threads";
import type * as ort from "onnxruntime-node";

// A fixed set of worker threads holding one session each: `size` requests run at once.

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

export class SessionPool {
  private readonly idle: Slot[];
  private nextId = 1;

  private constructor(private readonly slots: Slot[]) {
    this.idle = [...slots];
  }

  /** Starts `size` workers and loads the model in each; rejects with onnxruntime's reason when it cannot. */
  static async create(bytes: Uint8Array, { size, threads }: { size: number; threads: number }): Promise<SessionPool> {
    const started = Array.from({ length: size }, () => startSlot(bytes, threads));
    const results = await Promise.allSettled(started);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) {
      await Promise.all(results.map((r) => (r.status === "fulfilled" ? r.value.worker.terminate() : null)));
      throw (failed as PromiseRejectedResult).reason;
    }
    return new SessionPool(results.map((r) => (r as PromiseFulfilledResult<Slot>).value));
  }

  get hasIdle(): boolean {
    return this.idle.length > 0;
  }

  /**
   * Runs on an idle worker; the caller keeps to `size` at once. The feeds' buffers are
   * transferred to the worker: the caller must not use them afterwards.
   */
  async run(feeds: Record<string, RawTensor>, outputs: string[]): Promise<Record<string, RawTensor>> {
    const slot = this.idle.pop();
    if (!slot) throw new Error("No idle session");
    const id = this.nextId++;
    try {
      return await new Promise<Record<string, RawTensor>>((resolve, reject) => {
        slot.pending.set(id, { resolve, reject });
        slot.worker.postMessage({ type: "run", id, feeds, outputs }, transferable(feeds));
      });
    } finally {
      this.idle.push(slot);
    }
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
    await Promise.all(
      this.slots.map(async (slot) => {
        const released = new Promise<void>((resolve) => {
          slot.worker.once("message", () => resolve());
          slot.worker.once("exit", () => resolve());
        });
        slot.worker.postMessage({ type: "release" });
        await Promise.race([released, new Promise((r) => setTimeout(r, 2_000).unref())]);
        await slot.worker.terminate();
      }),
    );
  }
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
