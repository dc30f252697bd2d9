// One onnxruntime session in a worker thread. onnxruntime-node's `run` is synchronous under
// its promise, so sessions live off the main thread: the HTTP server keeps answering, timers
// fire on time, and an endpoint's concurrency is real.
import { parentPort, workerData } from "node:worker_threads";
import * as ort from "onnxruntime-node";

let session;
try {
  session = await ort.InferenceSession.create(workerData.bytes, {
    intraOpNumThreads: workerData.threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  });
  parentPort.postMessage({ type: "ready" });
} catch (error) {
  parentPort.postMessage({ type: "load-failed", message: String(error?.message ?? error).split("\n")[0] });
}

parentPort.on("message", async (m) => {
  if (m.type === "release") {
    await session?.release().catch(() => {});
    parentPort.postMessage({ type: "released" });
    return;
  }
  try {
    const feeds = {};
    for (const [name, t] of Object.entries(m.feeds)) feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
    const result = await session.run(feeds, m.outputs);
    const outputs = {};
    for (const name of m.outputs) outputs[name] = { type: result[name].type, data: result[name].data, dims: result[name].dims };
    parentPort.postMessage({ type: "result", id: m.id, outputs });
  } catch (error) {
    parentPort.postMessage({ type: "failed", id: m.id, message: String(error?.message ?? error).split("\n")[0] });
  }
});
