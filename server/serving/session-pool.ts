import { Worker } from "node:worker_threads";
import type * as ort from "onnxruntime-node";

// A fixed set of worker threads holding one session each: `size` requests run at once.

export interface RawTensor {
  type: ort.Tensor.Type;
  data: ort.Tensor.DataType;
  dims: readonly number[];
}

type Reply = { type: "ready" } | { type: "load-failed"; message: string } | { type: "result"; id: number; outputs: Record<string, RawTensor> } | { type: "failed"; id: number; message: string } | { type: "released" };

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (o: Record<string, RawTensor>) => void; reject: (e: Error) => void }>;
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

  /** Runs on an idle worker; the caller keeps to `size` at once. */
  async run(feeds: Record<string, RawTensor>, outputs: string[]): Promise<Record<string, RawTensor>> {
    const slot = this.idle.pop();
    if (!slot) throw new Error("No idle session");
    const id = this.nextId++;
    try {
      return await new Promise((resolve, reject) => {
        slot.pending.set(id, { resolve, reject });
        slot.worker.postMessage({ type: "run", id, feeds, outputs });
      });
    } finally {
      this.idle.push(slot);
    }
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
      } else if (m.type === "result" || m.type === "failed") {
        const waiter = slot.pending.get(m.id);
        slot.pending.delete(m.id);
        if (m.type === "result") waiter?.resolve(m.outputs);
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
