import { afterAll, describe, expect, it } from "vitest";
import { buildMlp, runMlpInJs, seededValues } from "../../tests/helpers/onnx-models";
import { buildSlowModel } from "../../tests/helpers/slow-model";
import { endpointSettingsSchema, type ServableEndpoint } from "./endpoints.schemas";
import { InferenceEngine } from "./inference.service";
import { EndpointUnavailableError } from "./inference.errors";
import { buildFeeds } from "./tensors";

// Quick models also run on the main thread for small requests; large requests and slow
// models stay on the worker threads. Both paths give the same numbers.

const models = new Map<string, Buffer>([
  ["mlp", buildMlp()],
  ["slow", buildSlowModel()],
]);
const engines: InferenceEngine[] = [];

function spec(name: string, settings: Record<string, unknown> = {}): ServableEndpoint {
  const signature =
    name === "slow"
      ? { inputs: [{ name: "x", type: "float32", shape: [1] }], outputs: [{ name: "y", type: "float32", shape: [] }] }
      : { inputs: [{ name: "x", type: "float32", shape: ["batch", 4] }], outputs: [{ name: "y", type: "float32", shape: ["batch", 3] }] };
  return { id: crypto.randomUUID(), orgId: "org", name, modelName: name, versionId: `${name}-v1`, versionNumber: 1, sha256: name, signature, settings: endpointSettingsSchema.parse({ maxBatch: 65_536, ...settings }) };
}

async function engineWith(specs: ServableEndpoint[], options: { inline?: boolean } = {}) {
  const engine = new InferenceEngine({ readModel: async (sha) => models.get(sha)!, defaultTimeoutMs: 30_000, ...options });
  engines.push(engine);
  const changes = await engine.sync(specs);
  expect(changes.every((c) => c.status === "ready")).toBe(true);
  return engine;
}

const rows = (n: number) => Array.from({ length: n }, (_, i) => seededValues(4, 500 + i));

afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
});

describe("main-thread sessions for quick models", () => {
  it("runs small requests of a quick model on the main thread and large ones on workers, with the same numbers", async () => {
    const engine = await engineWith([spec("mlp")]);
    const loaded = engine.find("org", "mlp");
    expect(loaded.inline).not.toBeNull();
    expect(loaded.inline!.calibrationMs).toBeLessThanOrEqual(0.5);

    const small = rows(2);
    const large = rows(20_000);
    const tensor = (x: number[][]) => [{ name: "x", shape: [x.length, 4], datatype: "FP32", data: x.flat() }];
    expect(loaded.inline!.takes(buildFeeds("mlp", loaded.spec.signature, loaded.spec.settings, tensor(small)))).toBe(true);
    expect(loaded.inline!.takes(buildFeeds("mlp", loaded.spec.signature, loaded.spec.settings, tensor(large)))).toBe(false);

    for (const x of [small, large]) {
      const [{ tensor: y }] = await engine.infer(loaded, tensor(x));
      const expected = runMlpInJs(x);
      expect(y.dims).toEqual([x.length, 3]);
      Array.from(y.data as Float32Array).forEach((v, i) => expect(Math.abs(v - expected[Math.floor(i / 3)][i % 3])).toBeLessThan(1e-5));
    }
  });

  it("starts a quick model's workers only as large requests need them, up to its concurrency", async () => {
    const engine = await engineWith([spec("mlp", { concurrency: 3 })]);
    const loaded = engine.find("org", "mlp");
    expect(loaded.inline).not.toBeNull();
    expect(loaded.pool.started).toBe(1); // the one that timed the model
    const tensor = (x: number[][]) => [{ name: "x", shape: [x.length, 4], datatype: "FP32", data: x.flat() }];
    for (let i = 0; i < 3; i++) await engine.infer(loaded, tensor(rows(2)));
    expect(loaded.pool.started).toBe(1); // small requests run on the main thread
    const large = [rows(20_000), rows(20_001), rows(20_002)];
    const answers = await Promise.all(large.map((x) => engine.infer(loaded, tensor(x))));
    expect(loaded.pool.started).toBeGreaterThanOrEqual(2);
    expect(loaded.pool.started).toBeLessThanOrEqual(3);
    answers.forEach(([{ tensor: y }], i) => {
      expect(y.dims).toEqual([large[i].length, 3]);
      const expected = runMlpInJs(large[i].slice(-1))[0];
      Array.from((y.data as Float32Array).slice(-3)).forEach((v, j) => expect(Math.abs(v - expected[j])).toBeLessThan(1e-5));
    });
  });

  it("answers 503 to a request for an endpoint released while the request arrived, so it is sent again", async () => {
    const engine = await engineWith([spec("mlp")]);
    const loaded = engine.find("org", "mlp");
    await engine.sync([]); // undeployed: nothing runs on it, so its sessions go at once
    await new Promise((r) => setTimeout(r, 50));
    expect(loaded.isReleased).toBe(true);
    const error = await engine.infer(loaded, [{ name: "x", shape: [1, 4], datatype: "FP32", data: rows(1)[0] }]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EndpointUnavailableError);
    expect((error as EndpointUnavailableError).status).toBe(503);
    expect((error as EndpointUnavailableError).message).toMatch(/changed while this request arrived; send it again/);
  });

  it("keeps a slow model on workers only, all of them started up front, and can be turned off", async () => {
    const engine = await engineWith([spec("slow", { concurrency: 3 })]);
    expect(engine.find("org", "slow").inline).toBeNull();
    expect(engine.find("org", "slow").pool.started).toBe(3);
    const off = await engineWith([spec("mlp")], { inline: false });
    const loaded = off.find("org", "mlp");
    expect(loaded.inline).toBeNull();
    const [{ tensor: y }] = await off.infer(loaded, [{ name: "x", shape: [1, 4], datatype: "FP32", data: rows(1)[0] }]);
    expect(Math.abs((y.data as Float32Array)[0] - runMlpInJs(rows(1))[0][0])).toBeLessThan(1e-5);
  });
});
