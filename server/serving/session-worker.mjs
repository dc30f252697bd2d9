// One onnxruntime session in a worker thread. onnxruntime-node's `run` is synchronous under
// its promise, so sessions live off the main thread: the HTTP server keeps answering, timers
// fire on time, and an endpoint's concurrency is real. Tensors cross in both directions by
// transfer, not copy, when their buffers allow it.
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

const tensorsOf = (feeds) => {
  const tensors = {};
  for (const name in feeds) tensors[name] = new ort.Tensor(feeds[name].type, feeds[name].data, feeds[name].dims);
  return tensors;
};

parentPort.on("message", async (m) => {
  if (m.type === "release") {
    await session?.release().catch(() => {});
    parentPort.postMessage({ type: "released" });
    return;
  }
  try {
    if (m.type === "time") {
      // Warm-up runs timed here, off the main thread, to tell whether the model is quick.
      // The first run (allocations) does not count. Three runs over `stopAboveMs` end the
      // timing early (a slow model need not be run 15 times); one alone may be the machine.
      const feeds = tensorsOf(m.feeds);
      const warmUp = performance.now();
      await session.run(feeds, m.outputs);
      const warmUpMs = performance.now() - warmUp;
      if (warmUpMs > 20 * m.stopAboveMs) {
        // Far too slow for a first run to be the reason: no need to run it again.
        parentPort.postMessage({ type: "timed", id: m.id, ms: warmUpMs });
        return;
      }
      const times = [];
      let slow = 0;
      for (let i = 0; i < m.runs; i++) {
        const started = performance.now();
        await session.run(feeds, m.outputs);
        times.push(performance.now() - started);
        if (times[i] > m.stopAboveMs && ++slow === 3) {
          parentPort.postMessage({ type: "timed", id: m.id, ms: Math.min(...times.filter((t) => t > m.stopAboveMs)) });
          return;
        }
      }
      times.sort((a, b) => a - b);
      parentPort.postMessage({ type: "timed", id: m.id, ms: times[times.length >> 1] });
      return;
    }
    const result = await session.run(tensorsOf(m.feeds), m.outputs);
    const outputs = {};
    const transfer = [];
    for (const name of m.outputs) {
      const data = result[name].data;
      outputs[name] = { type: result[name].type, data, dims: result[name].dims };
      if (ArrayBuffer.isView(data) && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && !transfer.includes(data.buffer)) transfer.push(data.buffer);
    }
    try {
      parentPort.postMessage({ type: "result", id: m.id, outputs }, transfer);
    } catch {
      parentPort.postMessage({ type: "result", id: m.id, outputs }); // a buffer that cannot move is copied
    }
  } catch (error) {
    parentPort.postMessage({ type: "failed", id: m.id, message: String(error?.message ?? error).split("\n")[0] });
  }
});
