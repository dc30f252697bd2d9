import { createRequire } from "node:module";
import * as ort from "onnxruntime-node";

// onnxruntime-node's `session.run` checks its arguments, then runs the native session inside a
// setImmediate callback behind two async functions, then wraps each output again: for a model
// that runs in a few microseconds, that costs more than the run (about 14 µs against 6 µs for
// the benchmark's MLP). The main-thread session (inline-session.ts) calls the package's own
// native session directly instead, synchronously — the same call the package makes, with the
// same options, so the answers are the same bytes. The engine has already checked the feeds
// against the model's signature.
//
// The native session is not part of the package's documented API: when the installed version
// does not offer it as expected, `createDirectSession` answers null and the caller uses the
// public session.

type NativeSession = {
  loadModel(buffer: ArrayBufferLike, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Record<string, ort.Tensor>, fetches: Record<string, null>, options: object): Record<string, ort.Tensor>;
  dispose(): void;
  readonly outputMetadata: ReadonlyArray<{ name: string }>;
};

interface NativeBinding {
  binding: { InferenceSession: new () => NativeSession };
  initOrt: () => void;
}

let native: NativeBinding | null | undefined;

function loadBinding(): NativeBinding | null {
  if (native !== undefined) return native;
  try {
    const loaded = createRequire(import.meta.url)("onnxruntime-node/dist/binding.js") as Partial<NativeBinding>;
    const Session = loaded.binding?.InferenceSession;
    const usable = typeof loaded.initOrt === "function" && typeof Session === "function" && ["run", "loadModel", "dispose"].every((m) => typeof (Session.prototype as unknown as Record<string, unknown>)[m] === "function");
    native = usable ? (loaded as NativeBinding) : null;
  } catch {
    native = null;
  }
  return native;
}

export interface DirectSession {
  /** Runs at once, on this thread; throws what the runtime throws. */
  run(feeds: Record<string, ort.Tensor>, outputs: readonly string[]): Record<string, ort.Tensor>;
  release(): void;
}

const NO_RUN_OPTIONS = {};

/**
 * The model loaded on this thread without the package's asynchronous wrapper; null when the
 * installed onnxruntime-node has no such native session. Throws what loading throws.
 */
export function createDirectSession(bytes: Uint8Array, options: Pick<ort.InferenceSession.SessionOptions, "intraOpNumThreads" | "interOpNumThreads" | "executionMode" | "graphOptimizationLevel">): DirectSession | null {
  const found = loadBinding();
  if (!found) return null;
  found.initOrt();
  const session = new found.binding.InferenceSession();
  // As the public `create` passes them when no execution provider is named: the CPU one.
  session.loadModel(bytes.buffer, bytes.byteOffset, bytes.byteLength, { ...options, executionProviders: [] });
  const metadata: unknown = session.outputMetadata;
  if (!Array.isArray(metadata) || !metadata.every((o) => typeof (o as { name?: unknown })?.name === "string")) {
    session.dispose();
    return null;
  }
  const every = (metadata as Array<{ name: string }>).map((o) => o.name);
  // The fetches of a run asking for every output, in the model's order, are built once.
  const allFetches: Record<string, null> = Object.fromEntries(every.map((name) => [name, null]));
  let isReleased = false;
  return {
    run(feeds, outputs) {
      let isEvery = outputs.length === every.length;
      for (let i = 0; isEvery && i < outputs.length; i++) isEvery = outputs[i] === every[i];
      let fetches = allFetches;
      if (!isEvery) {
        fetches = {};
        for (const name of outputs) fetches[name] = null;
      }
      return session.run(feeds, fetches, NO_RUN_OPTIONS);
    },
    release() {
      if (isReleased) return;
      isReleased = true;
      session.dispose();
    },
  };
}
