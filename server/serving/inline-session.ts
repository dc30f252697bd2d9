import * as ort from "onnxruntime-node";
import type { TensorSpec } from "../models/validation.schemas";
import type { RawTensor, SessionPool } from "./session-pool";
import { createDirectSession, type DirectSession } from "./ort-direct";

// A session on the model server's main thread, for models so quick that handing a request to
// a worker thread (two postMessage hops and a wake-up of each side) costs more than running it.
// A run is synchronous (ort-direct.ts calls the native session without the package's
// asynchronous wrapper, which costs more than such a run), so it holds the event loop for its
// whole duration: the engine sends a request here only
// when its estimated run time is within INLINE_BUDGET_MS, and stops using this session for a
// while when runs keep taking far longer than estimated (one slow run is usually the machine
// being busy for a moment — a pause, another process — not the model). Everything else goes
// to the worker pool.

/** Models larger than this always run on workers. */
export const INLINE_MAX_MODEL_BYTES = 16 * 1024 * 1024;
/** A request whose estimated run time is within this runs on the main thread. */
export const INLINE_BUDGET_MS = 1;
/** A model whose warm-up run (dynamic dimensions 1) takes longer than this always runs on workers. */
const INLINE_MAX_CALIBRATION_MS = 0.5;
/** A run this much slower than the budget counts as slow. */
const INLINE_GIVE_UP_MS = 20 * INLINE_BUDGET_MS;
/** This many slow runs in a row turn the endpoint's main-thread session off … */
const INLINE_SLOW_RUNS = 3;
/** … for this long; then it is tried again. */
const INLINE_PAUSE_MS = 30_000;
const CALIBRATION_RUNS = 15;

export class InlineSession {
  private isReleased = false;
  private slowRuns = 0;
  private pausedUntil = 0;

  private constructor(
    /** The native session, run synchronously; or, when the installed runtime offers none, the public one. */
    private readonly session: { direct: DirectSession } | { public: ort.InferenceSession },
    /** Median milliseconds of a warm-up run. */
    readonly calibrationMs: number,
    /** Values in the warm-up inputs, to scale the estimate by a request's size. */
    private readonly calibrationValues: number,
  ) {}

  /**
   * Times warm-up runs on one of the pool's workers (so a slow model never blocks this thread)
   * and, when the model is small and quick, loads it on this thread too; null otherwise (or
   * when the warm-up inputs cannot be built), and the endpoint runs on its workers only.
   */
  static async createIfQuick(bytes: Uint8Array, signature: { inputs: TensorSpec[]; outputs: TensorSpec[] }, threads: number, pool: SessionPool): Promise<InlineSession | null> {
    if (bytes.byteLength > INLINE_MAX_MODEL_BYTES) return null;
    const feeds = zeroFeeds(signature.inputs);
    if (!feeds) return null;
    const outputs = signature.outputs.map((o) => o.name);
    const calibrationMs = await pool.time(feeds, outputs, { runs: CALIBRATION_RUNS, stopAboveMs: 10 * INLINE_MAX_CALIBRATION_MS }).catch(() => Infinity);
    if (!(calibrationMs <= INLINE_MAX_CALIBRATION_MS)) return null;
    let values = 0;
    for (const name in feeds) values += feeds[name].data.length;
    const options = { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all" } as const;
    const direct = createDirectSession(bytes, options);
    const session = direct ? { direct } : { public: await ort.InferenceSession.create(bytes, options) };
    return new InlineSession(session, calibrationMs, Math.max(1, values));
  }

  /** Whether a request with these feeds should run here, by its size against the warm-up's. */
  takes(feeds: Record<string, RawTensor>): boolean {
    if (this.isReleased || (this.pausedUntil !== 0 && performance.now() < this.pausedUntil)) return false;
    let values = 0;
    for (const name in feeds) values += feeds[name].data.length;
    return this.calibrationMs * Math.max(1, values / this.calibrationValues) <= INLINE_BUDGET_MS;
  }

  run(feeds: Record<string, RawTensor>, outputs: string[]): Promise<Record<string, RawTensor>> {
    const tensors: Record<string, ort.Tensor> = {};
    for (const name in feeds) {
      const f = feeds[name];
      tensors[name] = new ort.Tensor(f.type, f.data as never, f.dims);
    }
    const started = performance.now();
    if ("public" in this.session) return this.session.public.run(tensors, outputs).then((result) => this.finish(started, result as Record<string, ort.Tensor>, outputs));
    // In the event loop's check phase, as the public session runs too, not at once: the runs of
    // requests that arrived together then go one after another and their answers are written
    // together, which costs the server less per request than answering each as it arrives.
    const { direct } = this.session;
    return new Promise((resolve, reject) => {
      setImmediate(() => {
        try {
          resolve(this.finish(started, direct.run(tensors, outputs), outputs));
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  /** A run's outputs; a run far slower than estimated counts towards a pause. */
  private finish(started: number, result: Record<string, ort.Tensor>, outputs: string[]): Record<string, RawTensor> {
    if (performance.now() - started <= INLINE_GIVE_UP_MS) this.slowRuns = 0;
    else if (++this.slowRuns >= INLINE_SLOW_RUNS) {
      this.slowRuns = 0;
      this.pausedUntil = performance.now() + INLINE_PAUSE_MS;
    }
    const out: Record<string, RawTensor> = {};
    for (const name of outputs) out[name] = { type: result[name].type, data: result[name].data, dims: result[name].dims };
    return out;
  }

  async release(): Promise<void> {
    if (this.isReleased) return;
    this.isReleased = true;
    if ("public" in this.session) await this.session.public.release();
    else this.session.direct.release();
  }
}

/** Zero-filled inputs with every symbolic dimension 1; null when a type cannot be built. */
function zeroFeeds(inputs: TensorSpec[]): Record<string, RawTensor> | null {
  const feeds: Record<string, RawTensor> = {};
  for (const input of inputs) {
    const dims = input.shape.map((d) => (typeof d === "number" && d > 0 ? d : 1));
    const data = zeros(input.type, dims.reduce((a, b) => a * b, 1));
    if (!data) return null;
    feeds[input.name] = { type: input.type as RawTensor["type"], data, dims };
  }
  return feeds;
}

function zeros(type: string, count: number): RawTensor["data"] | null {
  switch (type) {
    case "float32":
      return new Float32Array(count);
    case "float64":
      return new Float64Array(count);
    case "int64":
      return new BigInt64Array(count);
    case "uint64":
      return new BigUint64Array(count);
    case "int32":
      return new Int32Array(count);
    case "uint32":
      return new Uint32Array(count);
    case "int16":
      return new Int16Array(count);
    case "uint16":
    case "float16": // zeros as half-precision bit patterns are zeros
      return new Uint16Array(count);
    case "int8":
      return new Int8Array(count);
    case "uint8":
    case "bool":
      return new Uint8Array(count);
    default:
      return null;
  }
}
