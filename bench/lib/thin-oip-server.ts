import fs from "node:fs";
import http from "node:http";
import * as ort from "onnxruntime-node";

// The reference of bench/serve.ts: the thinnest HTTP server around one onnxruntime session —
// node:http, parse the OIP JSON body, run, write the OIP JSON answer. No auth, no routing, no
// checks beyond what JSON.parse does. Arguments: <model.onnx> <port>; prints "ready" when listening.

const [modelPath, portText] = process.argv.slice(2);
const session = await ort.InferenceSession.create(fs.readFileSync(modelPath), { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all" });

interface OipRequest {
  inputs: Array<{ name: string; shape: number[]; datatype: string; data: number[] }>;
}

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", async () => {
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as OipRequest;
      const feeds: Record<string, ort.Tensor> = {};
      for (const i of body.inputs) feeds[i.name] = new ort.Tensor("float32", Float32Array.from(i.data), i.shape);
      const out = await session.run(feeds);
      const outputs = Object.entries(out).map(([name, t]) => ({ name, datatype: "FP32", shape: t.dims, data: Array.from(t.data as Float32Array) }));
      const text = JSON.stringify({ model_name: "reference", outputs });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
      res.end(text);
    } catch (error) {
      res.writeHead(400, { "content-type": "text/plain" });
      res.end(String(error));
    }
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(portText), "127.0.0.1", () => console.log("ready"));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
