import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { buildGarbage, buildHalfInputModel, buildHalfOutputModel, buildMlp, buildTwoInputModel, runMlpInJs, seededValues } from "../../tests/helpers/onnx-models";
import { buildSlowModel } from "../../tests/helpers/slow-model";
import { createModelServer } from "../../serve/server";
import { createDb, type Db } from "../db";
import type { OrgActor } from "../auth/roles";
import { createApiToken } from "../auth/tokens.service";
import { createLocalBlobStore } from "../storage/local-blob-store";
import { isVersionInUse } from "../models/registry.service";
import type { Signature } from "../models/validation.schemas";
import { createEndpointInput } from "./endpoints.schemas";
import { createEndpoint, undeployEndpoint, updateEndpointVersion } from "./endpoints.service";
import { InferenceEngine } from "./inference.service";
import { readBlob } from "./model-files";
import { deployEndpoint } from "./deploy.service";
import { silentProgress } from "../jobs/progress";
import { addReadyVersion as addVersion, deployOn, mlpSignature } from "../../tests/helpers/serving";

// The model server end to end: real onnxruntime sessions, real HTTP on loopback, a database of its own.

let database: TestDatabase;
let db: Db;
let model: ReturnType<typeof createModelServer>;
let base: string;
let owner: OrgActor;
let token: string;
let otherToken: string;
const blobs = createLocalBlobStore({ root: fs.mkdtempSync(path.join(os.tmpdir(), "gantry-serve-")) });

const twoInputSignature: Signature = {
  inputs: [
    { name: "a", type: "float32", shape: ["batch", 3] },
    { name: "b", type: "float32", shape: ["batch", 3] },
  ],
  outputs: [{ name: "y", type: "float32", shape: ["batch", 3] }],
};
const slowSignature: Signature = { inputs: [{ name: "x", type: "float32", shape: [1] }], outputs: [{ name: "y", type: "float32", shape: [] }] };

const addReadyVersion = (actor: OrgActor, bytes: Buffer, signature: Signature, modelId?: string) => addVersion(db, blobs, { actor, bytes, signature, modelId });
const deploy = (actor: OrgActor, name: string, versionId: string, settings: Record<string, unknown> = {}) => deployOn(db, model, { actor, name, versionId, settings });

async function call(method: string, route: string, body?: unknown, bearer: string | null = token) {
  const res = await fetch(base + route, {
    method,
    headers: { ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, body: json };
}

const rows = (n: number, seed: number) => Array.from({ length: n }, (_, i) => seededValues(4, seed + i));

beforeAll(async () => {
  database = await createTestDatabase("serving");
  db = createDb(database.url, 4);
  owner = (await createOrgWithMember(db, "owner")).actor;
  const other = (await createOrgWithMember(db, "owner")).actor;
  token = (await createApiToken(db, { actor: owner, input: { name: "serve", scopes: ["read"] } })).token;
  otherToken = (await createApiToken(db, { actor: other, input: { name: "serve", scopes: ["read"] } })).token;
  const engine = new InferenceEngine({ readModel: (sha) => readBlob(blobs, sha), defaultTimeoutMs: 30_000 });
  model = createModelServer({ db, engine, pollMs: 60_000, maxBodyBytes: 64 * 1024 });
  const address = await model.listen(0, "127.0.0.1");
  base = `http://127.0.0.1:${address.port}`;
  const mlp = await addReadyVersion(owner, buildMlp(), mlpSignature);
  await deploy(owner, "mlp", mlp.versionId);
  await deploy(owner, "two", (await addReadyVersion(owner, buildTwoInputModel(), twoInputSignature)).versionId);
});

afterAll(async () => {
  await model?.close();
  await db?.$disconnect();
  await database?.drop();
});

describe("model server", () => {
  it("answers health without a token and marks the endpoint ready in the database", async () => {
    expect((await call("GET", "/v2/health/live", undefined, null)).status).toBe(200);
    expect((await call("GET", "/v2/health/ready", undefined, null)).status).toBe(200);
    const row = await db.endpoint.findFirstOrThrow({ where: { orgId: owner.orgId, name: "mlp" } });
    expect(row.status).toBe("ready");
    expect(await isVersionInUse(db, row.modelVersionId)).toBe(true);
  });

  it("describes the model with -1 for symbolic dimensions", async () => {
    const { status, body } = await call("GET", "/v2/models/mlp");
    expect(status).toBe(200);
    expect(body).toEqual({ name: "mlp", versions: ["1"], platform: "onnxruntime", inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }], outputs: [{ name: "y", datatype: "FP32", shape: [-1, 3] }] });
    expect((await call("GET", "/v2/models/mlp/versions/1")).status).toBe(200);
    expect((await call("GET", "/v2/models/mlp/versions/1/ready")).status).toBe(200);
    expect((await call("GET", "/v2/models/mlp/versions/7")).status).toBe(404);
  });

  it("infers over OIP and /predict with the numbers the JS reference gives", async () => {
    const x = rows(5, 100);
    const expected = runMlpInJs(x);
    const oip = await call("POST", "/v2/models/mlp/infer", { id: "r1", inputs: [{ name: "x", shape: [5, 4], datatype: "FP32", data: x.flat() }] });
    expect(oip.status).toBe(200);
    expect(oip.body.model_name).toBe("mlp");
    expect(oip.body.model_version).toBe("1");
    expect(oip.body.id).toBe("r1");
    expect(oip.body.outputs[0]).toMatchObject({ name: "y", shape: [5, 3], datatype: "FP32" });
    oip.body.outputs[0].data.forEach((v: number, i: number) => expect(Math.abs(v - expected[Math.floor(i / 3)][i % 3])).toBeLessThan(1e-5));

    const predict = await call("POST", "/predict/mlp", { inputs: { x } });
    expect(predict.status).toBe(200);
    const y = predict.body.outputs.y as number[][];
    expect(y).toHaveLength(5);
    y.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - expected[i][j])).toBeLessThan(1e-5)));
  });

  it("reads the inference route's every spelling: a version, a query, percent-encoding, extra slashes; a bad encoding is 400", async () => {
    const body = { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [0.1, 0.2, 0.3, 0.4] }] };
    const expected = (await call("POST", "/v2/models/mlp/infer", body)).body.outputs[0].data;
    for (const path of ["/v2/models/mlp/versions/1/infer", "/v2/models/mlp/infer?trace=1", "/v2/models/%6dlp/infer", "//v2/models/mlp//infer", "/v2/models/mlp/versions/%31/infer"]) {
      const answer = await call("POST", path, body);
      expect({ path, status: answer.status }).toEqual({ path, status: 200 });
      expect(answer.body.outputs[0].data).toEqual(expected);
    }
    const otherVersion = await call("POST", "/v2/models/mlp/versions/7/infer", body);
    expect(otherVersion.status).toBe(404);
    expect(otherVersion.body.error).toContain("serves version 1, not version 7");
    const badEncoding = await call("POST", "/v2/models/ml%zz/infer", body);
    expect(badEncoding.status).toBe(400);
    expect(badEncoding.body.error).toContain("not validly percent-encoded");
    expect((await call("POST", "/v2/models/nothing-here/infer", body)).status).toBe(404);
    expect((await call("POST", "/v2/models/mlp/infer", body, null)).status).toBe(401);
  });

  it("takes two inputs", async () => {
    const { status, body } = await call("POST", "/v2/models/two/infer", {
      inputs: [
        { name: "a", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] },
        { name: "b", shape: [1, 3], datatype: "FP32", data: [1, 1, 1] },
      ],
    });
    expect(status).toBe(200);
    expect(body.outputs[0].data).toEqual([4, 9, 16]);
  });

  it("answers a float16 output as FP16 numbers, and refuses one that overflowed to Infinity", async () => {
    const signature: Signature = { inputs: [{ name: "x", type: "float32", shape: ["batch", 2] }], outputs: [{ name: "y", type: "float16", shape: ["batch", 2] }] };
    await deploy(owner, "half", (await addReadyVersion(owner, buildHalfOutputModel(), signature)).versionId);
    const { status, body } = await call("POST", "/v2/models/half/infer", { inputs: [{ name: "x", shape: [2, 2], datatype: "FP32", data: [1, 0.5, -2, 0.333333] }] });
    expect(status).toBe(200);
    expect(body.outputs[0]).toMatchObject({ name: "y", datatype: "FP16", shape: [2, 2] });
    expect(body.outputs[0].data.slice(0, 3)).toEqual([1, 0.5, -2]);
    expect(body.outputs[0].data[3]).toBeCloseTo(1 / 3, 3);
    expect((await call("GET", "/v2/models/half")).body.outputs[0].datatype).toBe("FP16");
    // 131008 is past float16's largest value (65504): the cast gives +Infinity.
    const overflow = await call("POST", "/v2/models/half/infer", { inputs: [{ name: "x", shape: [1, 2], datatype: "FP32", data: [131008, 1] }] });
    expect(overflow.status).toBeGreaterThanOrEqual(400);
    expect(overflow.body.error).toMatch(/Infinity|not a finite number/);
  });

  it("takes FP16 inputs as JSON numbers and as raw halves, and refuses a value FP16 cannot hold", async () => {
    const signature: Signature = { inputs: [{ name: "x", type: "float16", shape: ["batch", 2] }], outputs: [{ name: "y", type: "float32", shape: ["batch", 2] }] };
    await deploy(owner, "half-in", (await addReadyVersion(owner, buildHalfInputModel(), signature)).versionId);
    const json = await call("POST", "/v2/models/half-in/infer", { inputs: [{ name: "x", shape: [2, 2], datatype: "FP16", data: [1, 0.5, -2, 0.333333] }] });
    expect(json.status).toBe(200);
    expect(json.body.outputs[0].data).toEqual([1, 0.5, -2, 0.333251953125]); // 1/3 as the nearest half
    // Binary: a JSON header, then the halves' bytes (little-endian 0x3c00 = 1, 0xc000 = -2).
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: "x", shape: [1, 2], datatype: "FP16", parameters: { binary_data_size: 4 } }] }));
    const res = await fetch(`${base}/v2/models/half-in/infer`, { method: "POST", headers: { authorization: `Bearer ${token}`, "inference-header-content-length": String(header.length) }, body: Buffer.concat([header, Buffer.from([0x00, 0x3c, 0x00, 0xc0])]) });
    expect(res.status).toBe(200);
    expect((await res.json()).outputs[0].data).toEqual([1, -2]);
    const beyond = await call("POST", "/v2/models/half-in/infer", { inputs: [{ name: "x", shape: [1, 2], datatype: "FP16", data: [1, 70000] }] });
    expect(beyond.status).toBe(400);
    expect(beyond.body.error).toBe('Input "x" has 70000 at position 1, beyond the range of FP16 (it would become Infinity); send values within ±65504');
    const asFloat32 = await call("POST", "/v2/models/half-in/infer", { inputs: [{ name: "x", shape: [1, 2], datatype: "FP32", data: [1, 2] }] });
    expect(asFloat32.body.error).toBe('Input "x" must have datatype FP16, not FP32');
  });

  it("needs a token, and names resolve inside the token's organisation", async () => {
    const none = await call("POST", "/v2/models/mlp/infer", { inputs: [] }, null);
    expect(none.status).toBe(401);
    expect(none.body.error).toMatch(/Bearer/);
    expect((await call("GET", "/v2/models/mlp", undefined, "gty_nope")).status).toBe(401);
    const other = await call("POST", "/v2/models/mlp/infer", { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [0, 0, 0, 0] }] }, otherToken);
    expect(other.status).toBe(404);
    expect(other.body.error).toMatch(/no endpoint named mlp/);
  });

  it("refuses bad requests with a sentence naming what is wrong", async () => {
    const infer = (inputs: unknown) => call("POST", "/v2/models/mlp/infer", { inputs });
    const cases: Array<[unknown, RegExp]> = [
      [[{ name: "z", shape: [1, 4], datatype: "FP32", data: [0, 0, 0, 0] }], /"z" is not an input of endpoint mlp; it takes x/],
      [[{ name: "x", shape: [1, 5], datatype: "FP32", data: [0, 0, 0, 0, 0] }], /size 4 in dimension 1/],
      [[{ name: "x", shape: [1, 4], datatype: "INT64", data: [0, 0, 0, 0] }], /must have datatype FP32, not INT64/],
      [[{ name: "x", shape: [2, 4], datatype: "FP32", data: [0, 0, 0, 0] }], /has 4 values, but shape \[2, 4\] needs 8/],
      [[{ name: "x", shape: [1, 4], datatype: "FP32", data: [0, "a", 0, 0] }], /not a finite number at position 1/],
    ];
    for (const [inputs, message] of cases) {
      const { status, body } = await infer(inputs);
      expect(status).toBe(400);
      expect(body.error).toMatch(message);
    }
    const missing = await call("POST", "/v2/models/two/infer", { inputs: [{ name: "a", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] }] });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toMatch(/"b" is missing/);
    const notJson = await call("POST", "/v2/models/mlp/infer", "{nope");
    expect(notJson.body.error).toMatch(/not valid JSON/);
    const huge = await call("POST", "/v2/models/mlp/infer", { inputs: [{ name: "x", shape: [20_000, 4], datatype: "FP32", data: new Array(80_000).fill(0.5) }] });
    expect(huge.status).toBe(413);
    expect(huge.body.error).toMatch(/over the 64 KB limit/);
    const ragged = await call("POST", "/predict/mlp", { inputs: { x: [[1, 2, 3, 4], [1, 2]] } });
    expect(ragged.status).toBe(400);
    expect(ragged.body.error).toMatch(/ragged/);
    const badOutput = await call("POST", "/v2/models/mlp/infer", { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [0, 0, 0, 0] }], outputs: [{ name: "q" }] });
    expect(badOutput.body.error).toMatch(/"q" is not an output/);
  });

  it("queues beyond the concurrency limit, refuses beyond the queue, and times out", async () => {
    await deploy(owner, "slow", (await addReadyVersion(owner, buildSlowModel(), slowSignature)).versionId, { concurrency: 1, maxQueue: 1 });
    const body = { inputs: [{ name: "x", shape: [1], datatype: "FP32", data: [0.001] }] };
    const results = await Promise.all([0, 1, 2].map(() => call("POST", "/v2/models/slow/infer", body)));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 429]);
    expect(results.find((r) => r.status === 429)!.body.error).toMatch(/busy.*concurrency and maxQueue/);

    await deploy(owner, "slow-timeout", (await addReadyVersion(owner, buildSlowModel(), slowSignature)).versionId, { timeoutMs: 20 });
    const late = await call("POST", "/v2/models/slow-timeout/infer", body);
    expect(late.status).toBe(504);
    expect(late.body.error).toMatch(/MODEL_INFERENCE_TIMEOUT/);
  });

  it("keeps serving the old version when the new one fails to load, and swaps to one that loads", async () => {
    const first = await addReadyVersion(owner, buildMlp(), mlpSignature);
    const endpoint = await deploy(owner, "swap", first.versionId);
    const broken = await addReadyVersion(owner, buildGarbage(), mlpSignature, first.modelId);
    await updateEndpointVersion(db, { actor: owner, input: { endpointId: endpoint.id, modelVersionId: broken.versionId } });
    await model.syncNow();
    const x = rows(1, 7);
    const still = await call("POST", "/v2/models/swap/infer", { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: x.flat() }] });
    expect(still.status).toBe(200);
    expect(still.body.model_version).toBe("1");
    const row = await db.endpoint.findUniqueOrThrow({ where: { id: endpoint.id } });
    expect(row.status).toBe("ready");
    expect(row.error).toMatch(/Version 2 .* could not be loaded.*still serving version 1/);

    const good = await addReadyVersion(owner, buildMlp(), mlpSignature, first.modelId);
    await updateEndpointVersion(db, { actor: owner, input: { endpointId: endpoint.id, modelVersionId: good.versionId } });
    await model.syncNow();
    expect((await call("GET", "/v2/models/swap")).body.versions).toEqual(["3"]);
  });

  it("frees an undeployed endpoint: later requests get 404", async () => {
    const endpoint = await deploy(owner, "gone", (await addReadyVersion(owner, buildMlp(), mlpSignature)).versionId);
    const body = { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [0, 0, 0, 0] }] };
    expect((await call("POST", "/v2/models/gone/infer", body)).status).toBe(200);
    await undeployEndpoint(db, { actor: owner, endpointId: endpoint.id });
    await model.syncNow();
    const after = await call("POST", "/v2/models/gone/infer", body);
    expect(after.status).toBe(404);
    expect((await call("GET", "/v2/models/gone/ready")).status).toBe(404);
  });

  it("keeps a served version from being deleted, yet lets its organisation go", async () => {
    const org = (await createOrgWithMember(db, "owner")).actor;
    const v = await addReadyVersion(org, buildMlp(), mlpSignature);
    await createEndpoint(db, { actor: org, input: createEndpointInput.parse({ name: "held", modelVersionId: v.versionId }) });
    await expect(db.modelVersion.delete({ where: { id: v.versionId } })).rejects.toThrow();
    await db.org.delete({ where: { id: org.orgId } });
    expect(await db.endpoint.count({ where: { orgId: org.orgId } })).toBe(0);
  });

  it("serves only ready versions, under a name not already serving", async () => {
    const v = await addReadyVersion(owner, buildMlp(), mlpSignature);
    await db.modelVersion.update({ where: { id: v.versionId }, data: { status: "invalid" } });
    await expect(createEndpoint(db, { actor: owner, input: createEndpointInput.parse({ name: "nope", modelVersionId: v.versionId }) })).rejects.toThrow(/is invalid, not ready/);
    const ready = await addReadyVersion(owner, buildMlp(), mlpSignature);
    await expect(createEndpoint(db, { actor: owner, input: createEndpointInput.parse({ name: "mlp", modelVersionId: ready.versionId }) })).rejects.toThrow(/already ready/);
  });

  it("deploys through the six steps, and fails a model that cannot load with its reason", async () => {
    const steps: string[] = [];
    const progress = { ...silentProgress, step: async (name: string) => void steps.push(name) };
    const endpoint = await createEndpoint(db, { actor: owner, input: createEndpointInput.parse({ name: "deployed", modelVersionId: (await addReadyVersion(owner, buildMlp(), mlpSignature)).versionId }) });
    const job = await db.job.findUniqueOrThrow({ where: { id: endpoint.jobId } });
    expect(job.kind).toBe("serving.deploy");
    const serving = setInterval(() => void model.syncNow(), 100);
    try {
      await deployEndpoint(db, { orgId: owner.orgId, endpointId: endpoint.id, blobs, progress, serveWaitMs: 10_000 });
    } finally {
      clearInterval(serving);
    }
    expect(steps).toEqual(["Validating", "Fetching the model file", "Loading with onnxruntime", "Warming up", "Starting to serve", "Ready"]);
    expect((await call("GET", "/v2/models/deployed/ready")).status).toBe(200);

    const broken = await createEndpoint(db, { actor: owner, input: createEndpointInput.parse({ name: "broken", modelVersionId: (await addReadyVersion(owner, buildGarbage(), mlpSignature)).versionId }) });
    await expect(deployEndpoint(db, { orgId: owner.orgId, endpointId: broken.id, blobs, progress: silentProgress, serveWaitMs: 1_000 })).rejects.toThrow(/could not be loaded/);
    const row = await db.endpoint.findUniqueOrThrow({ where: { id: broken.id } });
    expect(row.status).toBe("failed");
    expect(row.error).toMatch(/could not be loaded/);
  });

  it("speaks the binary tensor extension: raw bytes in, raw bytes out when asked, JSON otherwise", async () => {
    expect((await call("GET", "/v2", undefined, null)).body.extensions).toContain("binary_tensor_data");
    const x = rows(3, 40);
    const expected = runMlpInJs(x);
    const raw = Buffer.from(Float32Array.from(x.flat()).buffer);
    const send = async (header: object, binary: Buffer, headerLength?: number) => {
      const json = Buffer.from(JSON.stringify(header));
      const res = await fetch(`${base}/v2/models/mlp/infer`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream", "inference-header-content-length": String(headerLength ?? json.length) },
        body: Buffer.concat([json, binary]),
      });
      return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
    };
    const input = { name: "x", shape: [3, 4], datatype: "FP32", parameters: { binary_data_size: raw.length } };

    const both = await send({ id: "b1", inputs: [input], parameters: { binary_data_output: true } }, raw);
    expect(both.status).toBe(200);
    expect(both.headers.get("content-type")).toBe("application/octet-stream");
    const jsonLength = Number(both.headers.get("inference-header-content-length"));
    const head = JSON.parse(both.bytes.subarray(0, jsonLength).toString());
    expect(head).toMatchObject({ model_name: "mlp", id: "b1", outputs: [{ name: "y", shape: [3, 3], datatype: "FP32", parameters: { binary_data_size: 36 } }] });
    expect(head.outputs[0].data).toBeUndefined();
    const y = new Float32Array(both.bytes.buffer.slice(both.bytes.byteOffset + jsonLength, both.bytes.byteOffset + jsonLength + 36));
    Array.from(y).forEach((v, i) => expect(Math.abs(v - expected[Math.floor(i / 3)][i % 3])).toBeLessThan(1e-5));

    // Binary in, JSON out (the output's own binary_data: false wins over the request's).
    const jsonOut = await send({ inputs: [input], outputs: [{ name: "y", parameters: { binary_data: false } }], parameters: { binary_data_output: true } }, raw);
    expect(jsonOut.headers.get("content-type")).toBe("application/json");
    const body = JSON.parse(jsonOut.bytes.toString());
    expect(body.outputs[0].data).toEqual(Array.from(y));

    // JSON in, binary out, without any binary input.
    const jsonIn = await call("POST", "/v2/models/mlp/infer", { inputs: [{ name: "x", shape: [3, 4], datatype: "FP32", data: x.flat() }], outputs: [{ name: "y", parameters: { binary_data: true } }] });
    expect(jsonIn.status).toBe(200);

    const refusals: Array<[Promise<{ status: number; bytes: Buffer }>, RegExp]> = [
      [send({ inputs: [input] }, raw.subarray(0, 40)), /declares 48 bytes of binary data, but only 40 remain/],
      [send({ inputs: [input] }, Buffer.concat([raw, Buffer.alloc(4)])), /52 bytes of binary data after its JSON header, but its inputs declare 48/],
      [send({ inputs: [{ ...input, shape: [2, 4] }] }, raw), /has 48 bytes of binary data, but FP32 of shape \[2, 4\] needs 32/],
      [send({ inputs: [input] }, raw, 10_000), /Inference-Header-Content-Length is 10000/],
      [call("POST", "/v2/models/mlp/infer", { inputs: [input] }) as never, /no Inference-Header-Content-Length header/],
    ];
    for (const [response, message] of refusals) {
      const r = (await response) as { status: number; bytes?: Buffer; body?: { error: string } };
      expect(r.status).toBe(400);
      expect(r.body?.error ?? JSON.parse(r.bytes!.toString()).error).toMatch(message);
    }
  });

  it("counts requests in /metrics", async () => {
    const before = await call("GET", "/metrics");
    const line = (text: string, outcome: string) => Number(new RegExp(`gantry_serve_requests_total\\{org="${owner.orgId}",endpoint="mlp",outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
    await call("POST", "/predict/mlp", { inputs: { x: rows(2, 1) } });
    await call("POST", "/predict/mlp", { inputs: { y: rows(2, 1) } });
    const after = await call("GET", "/metrics");
    expect(after.status).toBe(200);
    expect(line(after.body, "success") - line(before.body, "success")).toBe(1);
    expect(line(after.body, "bad_request") - line(before.body, "bad_request")).toBe(1);
    expect(after.body).toMatch(/gantry_serve_request_duration_seconds_bucket\{org="[^"]+",endpoint="mlp",le="\+Inf"\} \d+/);
  });
});
