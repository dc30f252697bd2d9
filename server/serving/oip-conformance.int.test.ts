import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { buildFutureModel, buildMixedTypesModel, buildMlp, buildOverflowModel } from "../../tests/helpers/onnx-models";
import { addReadyVersion, deployOn, mlpSignature } from "../../tests/helpers/serving";
import { createModelServer } from "../../serve/server";
import { createDb, type Db } from "../db";
import type { OrgActor } from "../auth/roles";
import { createApiToken } from "../auth/tokens.service";
import { createLocalBlobStore } from "../storage/local-blob-store";
import type { Signature } from "../models/validation.schemas";
import { InferenceEngine } from "./inference.service";
import { readBlob } from "./model-files";

// The model server against what the Open Inference Protocol asks and what models nobody here
// made do: outputs that overflow to NaN or ±Infinity, inputs sharing a symbolic dimension,
// bodies over the limit, readiness of models that do not exist, models onnxruntime refuses.

let database: TestDatabase;
let db: Db;
let server: ReturnType<typeof createModelServer>;
let base: string;
let owner: OrgActor;
let token: string;
const blobs = createLocalBlobStore({ root: fs.mkdtempSync(path.join(os.tmpdir(), "gantry-oip-")) });

const overflowSignature: Signature = {
  inputs: [{ name: "x", type: "float32", shape: ["batch", 2] }],
  outputs: [
    { name: "y", type: "float32", shape: ["batch", 2] },
    { name: "z", type: "float32", shape: ["batch", 2] },
  ],
};
const mixedSignature: Signature = {
  inputs: [
    { name: "ids", type: "int64", shape: ["n"] },
    { name: "mask", type: "bool", shape: ["n"] },
  ],
  outputs: [{ name: "y", type: "float32", shape: ["n"] }],
};
const LIMIT = 64 * 1024;

async function call(method: string, route: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(base + route, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    body: body === undefined ? undefined : Buffer.isBuffer(body) ? new Uint8Array(body) : JSON.stringify(body),
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  let json: any = null;
  try {
    json = JSON.parse(bytes.toString());
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, body: json, bytes };
}

/** An infer body with `raw` as the binary data of input x. */
function binaryBody(header: object, raw: Buffer): { body: Buffer; headers: Record<string, string> } {
  const json = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([json, raw]), headers: { "content-type": "application/octet-stream", "inference-header-content-length": String(json.length) } };
}

beforeAll(async () => {
  database = await createTestDatabase("oip");
  db = createDb(database.url, 4);
  owner = (await createOrgWithMember(db, "owner")).actor;
  token = (await createApiToken(db, { actor: owner, input: { name: "serve", scopes: ["read"] } })).token;
  const engine = new InferenceEngine({ readModel: (sha) => readBlob(blobs, sha), defaultTimeoutMs: 30_000 });
  server = createModelServer({ db, engine, pollMs: 60_000, maxBodyBytes: LIMIT });
  base = `http://127.0.0.1:${(await server.listen(0, "127.0.0.1")).port}`;
  const deploy = async (name: string, bytes: Buffer, signature: Signature) => deployOn(db, server, { actor: owner, name, versionId: (await addReadyVersion(db, blobs, { actor: owner, bytes, signature })).versionId });
  await deploy("overflow", buildOverflowModel(), overflowSignature);
  await deploy("mixed", buildMixedTypesModel(), mixedSignature);
  await deploy("mlp", buildMlp(), mlpSignature);
});

afterAll(async () => {
  await server?.close();
  await db?.$disconnect();
  await database?.drop();
});

describe("outputs that are not finite numbers", () => {
  // 2 × 3e38 overflows FP32: y = [6e38 → Infinity, -Infinity], z = y - y = [NaN, NaN].
  const overflowing = { inputs: [{ name: "x", shape: [1, 2], datatype: "FP32", data: [2, -2] }] };

  it("are refused in JSON with the output named, instead of written as null", async () => {
    const r = await call("POST", "/v2/models/overflow/infer", overflowing);
    expect(r.status).toBe(422);
    expect(r.bytes.toString()).not.toMatch(/null/);
    expect(r.body.error).toBe(
      'Output "y" of endpoint overflow holds 2 values that are not a finite number (NaN or ±Infinity, first at position 0), which JSON cannot carry — the model overflowed or diverged on this input. Ask for it in binary to receive the values as they are: "outputs": [{ "name": "y", "parameters": { "binary_data": true } }].',
    );
    const predict = await call("POST", "/predict/overflow", { inputs: { x: [[2, -2]] } });
    expect(predict.status).toBe(422);
    expect(predict.body.error).toMatch(/^Output "y" of endpoint overflow holds 2 values that are not a finite number .*binary outputs/);
  });

  it("are refused for the JSON outputs only when some are asked in binary", async () => {
    const r = await call("POST", "/v2/models/overflow/infer", { ...overflowing, outputs: [{ name: "y", parameters: { binary_data: true } }, { name: "z" }] });
    expect(r.status).toBe(422);
    expect(r.body.error).toMatch(/^Output "z" of endpoint overflow holds 2 values/);
  });

  it("arrive as they are through the binary extension", async () => {
    const r = await call("POST", "/v2/models/overflow/infer", { ...overflowing, parameters: { binary_data_output: true } });
    expect(r.status).toBe(200);
    const jsonLength = Number(r.headers.get("inference-header-content-length"));
    const head = JSON.parse(r.bytes.subarray(0, jsonLength).toString());
    expect(head.outputs.map((o: { name: string; parameters: object }) => [o.name, o.parameters])).toEqual([
      ["y", { binary_data_size: 8 }],
      ["z", { binary_data_size: 8 }],
    ]);
    const values = new Float32Array(r.bytes.buffer.slice(r.bytes.byteOffset + jsonLength, r.bytes.byteOffset + jsonLength + 16));
    expect(Array.from(values)).toEqual([Infinity, -Infinity, NaN, NaN]);
  });

  it("answer in plain JSON when every output returned is asked as JSON, whatever the request's default", async () => {
    const r = await call("POST", "/v2/models/overflow/infer", { inputs: [{ name: "x", shape: [1, 2], datatype: "FP32", data: [0.5, -1] }], parameters: { binary_data_output: true }, outputs: [{ name: "y", parameters: { binary_data: false } }] });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("application/json");
    expect(r.headers.get("inference-header-content-length")).toBeNull();
    expect(r.body.outputs).toEqual([{ name: "y", shape: [1, 2], datatype: "FP32", data: [Math.fround(Math.fround(3e38) * 0.5), -Math.fround(3e38)] }]);
  });

  it("leave finite answers from the same model as they were, and count as errors", async () => {
    const fine = await call("POST", "/v2/models/overflow/infer", { inputs: [{ name: "x", shape: [1, 2], datatype: "FP32", data: [0.5, -1] }] });
    expect(fine.status).toBe(200);
    expect(fine.body.outputs[0].data).toEqual([Math.fround(Math.fround(3e38) * 0.5), -Math.fround(3e38)]);
    expect(fine.body.outputs[1].data).toEqual([0, 0]);
    const metrics = await call("GET", "/metrics");
    expect(metrics.bytes.toString()).toMatch(new RegExp(`gantry_serve_requests_total\\{org="${owner.orgId}",endpoint="overflow",outcome="error"\\} [1-9]`));
  });
});

describe("inputs that are not finite numbers", () => {
  const refusals = async (route: string, body: unknown, headers?: Record<string, string>) => {
    const r = await call("POST", route, body, headers);
    return [r.status, r.body?.error];
  };

  it("are refused alike in JSON and in binary", async () => {
    const notFinite = [400, 'Input "x" has a value that is not a finite number at position 1'];
    // JSON.parse reads 1e999 as Infinity; raw bytes can hold NaN and Infinity themselves.
    expect(await refusals("/v2/models/mlp/infer", Buffer.from('{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[0,1e999,0,0]}]}'))).toEqual(notFinite);
    const input = { name: "x", shape: [1, 4], datatype: "FP32", parameters: { binary_data_size: 16 } };
    for (const bad of [NaN, Infinity, -Infinity]) {
      const { body, headers } = binaryBody({ inputs: [input] }, Buffer.from(Float32Array.from([0, bad, 0, 0]).buffer));
      expect(await refusals("/v2/models/mlp/infer", body, headers)).toEqual(notFinite);
    }
  });

  it("include a JSON number beyond FP32's range, which would become Infinity", async () => {
    expect(await refusals("/v2/models/mlp/infer", { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [0, 0, 1e39, 0] }] })).toEqual([
      400,
      'Input "x" has 1e+39 at position 2, beyond the range of FP32 (it would become Infinity); send values within ±3.4e38',
    ]);
  });
});

describe("a symbolic dimension shared by two inputs", () => {
  it("must have one size: [3] against [1] is refused rather than broadcast", async () => {
    const r = await call("POST", "/v2/models/mixed/infer", {
      inputs: [
        { name: "ids", shape: [3], datatype: "INT64", data: [1, 2, 3] },
        { name: "mask", shape: [1], datatype: "BOOL", data: [true] },
      ],
    });
    expect(r.status).toBe(400);
    expect(r.body.error).toBe('Input "mask" gives dimension "n" (dimension 0) size 1, but input "ids" (dimension 0) gives it 3; every input declaring "n" must use the same size');
    const same = await call("POST", "/v2/models/mixed/infer", {
      inputs: [
        { name: "ids", shape: [3], datatype: "INT64", data: [1, 2, 3] },
        { name: "mask", shape: [3], datatype: "BOOL", data: [true, false, true] },
      ],
    });
    expect(same.status).toBe(200);
    expect(same.body.outputs[0].data).toEqual([1, 0, 3]);
  });
});

describe("readiness, body size and load errors", () => {
  it("answers 404 for the readiness of a model or version it does not serve, as for metadata", async () => {
    const unknown = await call("GET", "/v2/models/nobody/ready");
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatch(/no endpoint named nobody/);
    expect((await call("GET", "/v2/models/nobody")).status).toBe(404);
    expect((await call("GET", "/v2/models/mlp/versions/9/ready")).status).toBe(404);
    expect((await call("GET", "/v2/models/mlp/versions/1/ready")).status).toBe(200);
  });

  it("answers 413 to a body over the limit, whether its length is declared or not", async () => {
    const big = Buffer.alloc(LIMIT + 1, 0x20);
    const declared = await call("POST", "/v2/models/mlp/infer", big);
    expect(declared.status).toBe(413);
    expect(declared.body.error).toBe(`The request body is ${LIMIT + 1} bytes, over the 64 KB limit; send smaller batches`);
    const streamed = await fetch(`${base}/v2/models/mlp/infer`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < 4; i++) controller.enqueue(new Uint8Array(LIMIT / 2));
          controller.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    expect(streamed.status).toBe(413);
  });

  it("records a model onnxruntime refuses with a sentence, not its C++ signature", async () => {
    const endpoint = await deployOn(db, server, { actor: owner, name: "future", versionId: (await addReadyVersion(db, blobs, { actor: owner, bytes: buildFutureModel("ir"), signature: mlpSignature })).versionId });
    const row = await db.endpoint.findUniqueOrThrow({ where: { id: endpoint.id } });
    expect(row.status).toBe("failed");
    expect(row.error).toMatch(/^Version 1 of model-\w+ could not be loaded: the model's IR version is 99, newer than this onnxruntime reads \(up to \d+\) — export it with an older ONNX version$/);
    expect((await call("GET", "/v2/models/future/ready")).status).toBe(503);
  });
});
