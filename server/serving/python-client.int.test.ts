import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { buildConvNet, buildMlp, buildTwoInputModel, encodeNpy, seededValues } from "../../tests/helpers/onnx-models";
import { createModelServer } from "../../serve/server";
import { createDb, type Db } from "../db";
import type { OrgActor } from "../auth/roles";
import { createApiToken } from "../auth/tokens.service";
import { createLocalBlobStore } from "../storage/local-blob-store";
import type { Signature } from "../models/validation.schemas";
import { createEndpointInput } from "./endpoints.schemas";
import { createEndpoint } from "./endpoints.service";
import { InferenceEngine } from "./inference.service";
import { readBlob } from "./model-files";
import * as ort from "onnxruntime-node";
import { addReadyVersion } from "../../tests/helpers/serving";

// A Python client of the kind KServe and Triton users write (docs/examples/oip_client.py, the
// script the docs show: numpy + requests, OIP v2 JSON or binary tensors) against the real model
// server, checked number for number against a raw onnxruntime-node session on the same input.

let database: TestDatabase;
let db: Db;
let model: ReturnType<typeof createModelServer>;
let base: string;
let owner: OrgActor;
let token: string;
const home = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-python-"));
const blobs = createLocalBlobStore({ root: path.join(home, "blobs") });
const script = path.resolve("docs/examples/oip_client.py");

const f32 = (shape: Array<number | string>) => ({ type: "float32", shape });
const models: Record<string, { bytes: Buffer; signature: Signature }> = {
  mlp: { bytes: buildMlp(), signature: { inputs: [{ name: "x", ...f32(["batch", 4]) }], outputs: [{ name: "y", ...f32(["batch", 3]) }] } },
  convnet: { bytes: buildConvNet(), signature: { inputs: [{ name: "x", ...f32(["batch", 3, 16, 16]) }], outputs: [{ name: "y", ...f32(["batch", 4]) }] } },
  two: {
    bytes: buildTwoInputModel(),
    signature: {
      inputs: [
        { name: "a", ...f32(["batch", 3]) },
        { name: "b", ...f32(["batch", 3]) },
      ],
      outputs: [{ name: "y", ...f32(["batch", 3]) }],
    },
  },
};

async function deploy(actor: OrgActor, name: string) {
  const { versionId } = await addReadyVersion(db, blobs, { actor, ...models[name], filename: `${name}.onnx` });
  await createEndpoint(db, { actor, input: createEndpointInput.parse({ name, modelVersionId: versionId }) });
}

function python(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("python3", [script, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Writes each input as .npy, runs the client, and runs the same inputs through a raw session. */
async function compare(name: string, inputs: Record<string, { shape: number[]; data: Float32Array }>, binary: boolean) {
  const files = Object.entries(inputs).map(([input, t]) => {
    const file = path.join(home, `${name}-${input}-${binary}.npy`);
    fs.writeFileSync(file, encodeNpy("<f4", t.shape, t.data));
    return `${input}=${file}`;
  });
  const run = await python([base, name, ...files, ...(binary ? ["--binary"] : [])], { GANTRY_TOKEN: token });
  expect(run.stderr).toBe("");
  expect(run.code).toBe(0);
  const got = JSON.parse(run.stdout) as Record<string, { datatype: string; shape: number[]; data: number[] }>;

  const session = await ort.InferenceSession.create(models[name].bytes, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all" });
  try {
    const feeds = Object.fromEntries(Object.entries(inputs).map(([input, t]) => [input, new ort.Tensor("float32", t.data.slice(), t.shape)]));
    const raw = await session.run(feeds);
    for (const [output, tensor] of Object.entries(raw)) {
      expect(got[output].datatype).toBe("FP32");
      expect(got[output].shape).toEqual(tensor.dims);
      // float32 survives the JSON round trip exactly (and the binary one trivially).
      expect(got[output].data).toEqual(Array.from(tensor.data as Float32Array));
    }
  } finally {
    await session.release();
  }
}

const tensor = (shape: number[], seed: number) => ({ shape, data: Float32Array.from(seededValues(shape.reduce((a, b) => a * b, 1), seed)) });

beforeAll(async () => {
  database = await createTestDatabase("python_client");
  db = createDb(database.url, 4);
  owner = (await createOrgWithMember(db, "owner")).actor;
  token = (await createApiToken(db, { actor: owner, input: { name: "python", scopes: ["read"] } })).token;
  const engine = new InferenceEngine({ readModel: (sha) => readBlob(blobs, sha), defaultTimeoutMs: 30_000 });
  model = createModelServer({ db, engine, pollMs: 60_000 });
  base = `http://127.0.0.1:${(await model.listen(0, "127.0.0.1")).port}`;
  for (const name of Object.keys(models)) await deploy(owner, name);
  await model.syncNow();
});

afterAll(async () => {
  await model?.close();
  await db?.$disconnect();
  await database?.drop();
  fs.rmSync(home, { recursive: true, force: true });
});

describe("a Python OIP v2 client (numpy + requests)", () => {
  for (const binary of [false, true]) {
    const how = binary ? "binary tensors" : "JSON tensors";
    it(`gets the numbers of a raw session from /v2/models/{name}/infer, with ${how}`, async () => {
      await compare("mlp", { x: tensor([5, 4], 31) }, binary);
      await compare("convnet", { x: tensor([2, 3, 16, 16], 32) }, binary);
      await compare("two", { a: tensor([3, 3], 33), b: tensor([3, 3], 34) }, binary);
    });
  }

  it("reports the server's refusal", async () => {
    const file = path.join(home, "wrong.npy");
    fs.writeFileSync(file, encodeNpy("<f4", [1, 5], new Float32Array(5)));
    const run = await python([base, "mlp", `x=${file}`], { GANTRY_TOKEN: token });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/400: .*size 4 in dimension 1/);
  });
});
