import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createModelServer } from "@/serve/server";
import type { OrgActor } from "@/server/auth/roles";
import { createApiToken } from "@/server/auth/tokens.service";
import { createDb, type Db } from "@/server/db";
import type { Signature } from "@/server/models/validation.schemas";
import { getEndpointDetail } from "@/server/serving/endpoints.service";
import { InferenceEngine } from "@/server/serving/inference.service";
import { readBlob } from "@/server/serving/model-files";
import { createLocalBlobStore } from "@/server/storage/local-blob-store";
import { createOrgWithMember } from "@/tests/helpers/factories";
import { buildConvNet, buildMixedTypesModel, buildMlp, runMlpInJs } from "@/tests/helpers/onnx-models";
import { createTestDatabase, type TestDatabase } from "@/tests/setup/test-database";
import { curlExample, pythonExample, sampleInputs, typescriptExample } from "./examples";
import { addReadyVersion, deployOn } from "@/tests/helpers/serving";

// The examples the endpoint page shows are run as they are shown: curl in a shell, the Python
// with python3, the TypeScript with tsx, against a real model server.

const run = promisify(execFile);
let database: TestDatabase;
let db: Db;
let server: ReturnType<typeof createModelServer>;
let base: string;
let owner: OrgActor;
let token: string;
const blobs = createLocalBlobStore({ root: fs.mkdtempSync(path.join(os.tmpdir(), "gantry-examples-")) });
const work = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-examples-run-"));

async function deploy(name: string, bytes: Buffer, signature: Signature) {
  const { versionId } = await addReadyVersion(db, blobs, { actor: owner, bytes, signature });
  const endpoint = await deployOn(db, server, { actor: owner, name, versionId });
  return getEndpointDetail(db, { actor: owner, endpointId: endpoint.id, serveUrl: base });
}

const env = () => ({ ...process.env, GANTRY_TOKEN: token });

beforeAll(async () => {
  database = await createTestDatabase("examples");
  db = createDb(database.url, 4);
  owner = (await createOrgWithMember(db, "owner")).actor;
  token = (await createApiToken(db, { actor: owner, input: { name: "examples", scopes: ["read"] } })).token;
  const engine = new InferenceEngine({ readModel: (sha) => readBlob(blobs, sha), defaultTimeoutMs: 30_000 });
  server = createModelServer({ db, engine, pollMs: 60_000 });
  base = `http://127.0.0.1:${(await server.listen(0, "127.0.0.1")).port}`;
});

afterAll(async () => {
  await server?.close();
  await db?.$disconnect();
  await database?.drop();
  fs.rmSync(work, { recursive: true, force: true });
});

describe("endpoint examples", () => {
  it("curl, Python and TypeScript all get the MLP's real answer for one sample", async () => {
    const endpoint = await deploy("mlp-examples", buildMlp(), { inputs: [{ name: "x", type: "float32", shape: ["batch", 4] }], outputs: [{ name: "y", type: "float32", shape: ["batch", 3] }] });
    const expected = runMlpInJs([[0.5, 0.5, 0.5, 0.5]])[0];

    const curl = await run("bash", ["-c", curlExample(endpoint)], { env: env() });
    const predicted = JSON.parse(curl.stdout).outputs.y[0] as number[];
    predicted.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));

    fs.writeFileSync(path.join(work, "example.py"), pythonExample(endpoint));
    const python = await run("python3", [path.join(work, "example.py")], { env: env() });
    expect(python.stdout).toMatch(/^y \[\[/);
    const pyValues = python.stdout.replace(/^y /, "").match(/-?\d+\.\d+(e-?\d+)?/g)!.map(Number);
    pyValues.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));

    fs.writeFileSync(path.join(work, "example.mts"), typescriptExample(endpoint));
    const ts = await run(path.resolve("node_modules/.bin/tsx"), [path.join(work, "example.mts")], { env: env() });
    expect(ts.stdout).toMatch(/^y \[ 1, 3 \]/);
  }, 60_000);

  it("builds inputs of every type from the signature: int64 and bool inputs run too", async () => {
    const endpoint = await deploy("mixed-examples", buildMixedTypesModel(), {
      inputs: [{ name: "ids", type: "int64", shape: ["n"] }, { name: "mask", type: "bool", shape: ["n"] }],
      outputs: [{ name: "y", type: "float32", shape: ["n"] }],
    });
    expect(sampleInputs(endpoint.signature)).toEqual({ ids: [1], mask: [false] });
    const curl = await run("bash", ["-c", curlExample(endpoint)], { env: env() });
    expect(JSON.parse(curl.stdout)).toEqual({ outputs: { y: [0] } });
    fs.writeFileSync(path.join(work, "mixed.py"), pythonExample(endpoint));
    expect((await run("python3", [path.join(work, "mixed.py")], { env: env() })).stdout).toMatch(/^y \[0\.?\]/);
  }, 60_000);

  it("does not inline an image-sized input: curl reads request.json, Python builds it", async () => {
    const endpoint = await deploy("conv-examples", buildConvNet(), { inputs: [{ name: "x", type: "float32", shape: ["batch", 3, 16, 16] }], outputs: [{ name: "y", type: "float32", shape: ["batch", 4] }] });
    const curl = curlExample(endpoint);
    expect(curl).toContain("x has 768 values");
    expect(curl).toContain("--data-binary @request.json");
    fs.writeFileSync(path.join(work, "request.json"), JSON.stringify({ inputs: [{ name: "x", shape: [1, 3, 16, 16], datatype: "FP32", data: new Array(768).fill(0.5) }] }));
    const out = await run("bash", ["-c", curl], { env: env(), cwd: work });
    expect(JSON.parse(out.stdout).outputs[0]).toMatchObject({ name: "y", shape: [1, 4] });
    fs.writeFileSync(path.join(work, "conv.py"), pythonExample(endpoint));
    expect((await run("python3", [path.join(work, "conv.py")], { env: env() })).stdout).toMatch(/^y \[\[/);
  }, 60_000);
});
