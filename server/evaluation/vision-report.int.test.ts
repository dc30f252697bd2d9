import { execFile } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../db";
import { env } from "../env";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { addMember, createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { writeV3Dataset } from "../../tests/helpers/lerobot-datasets";
import { buildImageEncoder, buildMlp, buildTwoInputModel } from "../../tests/helpers/onnx-models";
import { startWorker, type StartedWorker } from "../../worker/worker";
import type { OrgActor } from "../auth/roles";
import { datasetDir, datasetStoreDir } from "../datasets/datasets.schemas";
import { addVersionFromUpload, createModel } from "../models/registry.service";
import { blobStore } from "../storage/blobs";
import { getEvaluation, startEvaluation } from "./evaluation.service";
import { SAMPLE_FRAME_MAX_BYTES } from "./evaluation.schemas";
import { checkQualityGate, setQualityGate } from "./gate.service";
import { listImageEncoders } from "./image-encoder";

// The visual descriptors made by an organisation's own image encoder (a tiny real ONNX model
// uploaded and validated through the registry), the frames the report shows per camera, and a
// dataset recorded without cameras: each through the job queue on generated LeRobot datasets.

const run = promisify(execFile);
let database: TestDatabase;
let db: Db;
let worker: StartedWorker;
let admin: OrgActor;
let operator: OrgActor;
let tmp: string;

beforeAll(async () => {
  database = await createTestDatabase("image_encoder");
  db = createDb(database.url, 4);
  const org = await createOrgWithMember(db, "admin");
  admin = org.actor;
  operator = await addMember(db, org.orgId, "operator");
  worker = await startWorker({ url: database.url, concurrency: 2, log: () => {} });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-encoder-"));
}, 60_000);

afterAll(async () => {
  await worker?.stop();
  await db?.$disconnect();
  await database?.drop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const finished = (evaluationId: string) =>
  waitFor(async () => {
    const e = await db.datasetEvaluation.findUniqueOrThrow({ where: { id: evaluationId } });
    return ["succeeded", "failed", "cancelled"].includes(e.status) && e;
  }, { timeoutMs: 90_000, what: "the scoring to end" });

/** Uploads an ONNX file as a new model's first version and waits for its validation. */
async function uploadModel(actor: OrgActor, name: string, bytes: Buffer): Promise<string> {
  const { id } = await createModel(db, { actor, input: { name, description: "" } });
  const { versionId } = await addVersionFromUpload(db, { actor, modelId: id, body: Readable.from([bytes]), blobs: blobStore(), maxBytes: 10_000_000, dims: {} });
  const done = await waitFor(async () => {
    const v = await db.modelVersion.findUniqueOrThrow({ where: { id: versionId } });
    return v.status !== "validating" && v;
  }, { timeoutMs: 60_000, what: `${name} to be validated` });
  expect(done.status, done.error ?? "").toBe("ready");
  return versionId;
}

/** A generated LeRobot v3.0 dataset as a dataset of the organisation with a build, its episodes' videos each their own picture. */
async function datasetWith(orgId: string, { cameras, episodes = 4 }: { cameras: string[]; episodes?: number }) {
  const repoId = `lab/vis-${crypto.randomBytes(3).toString("hex")}`;
  const buildId = `b-${crypto.randomBytes(4).toString("hex")}`;
  const dataset = await db.dataset.create({ data: { orgId, repoId, buildId, fps: 10, robotType: "so101_follower" } });
  const build = path.join(datasetStoreDir(env(), dataset.id), "builds", buildId);
  await writeV3Dataset(build, { episodes, frames: 20, videoKeys: cameras });
  // The generator writes the same test pattern for every episode; here each gets a scene of its own.
  const scenes = ["testsrc2", "mandelbrot", "smptebars", "rgbtestsrc", "testsrc2,hue=h=180", "mandelbrot,hue=h=90"];
  for (const [c, camera] of cameras.entries()) {
    for (let e = 0; e < episodes; e++) {
      const [source, ...filters] = scenes[(e + c) % scenes.length].split(",");
      const file = path.join(build, `videos/${camera}/chunk-000/file-${String(e).padStart(3, "0")}.mp4`);
      await run("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", [`${source}=size=64x48:rate=10`, ...filters].join(","), "-frames:v", "20", "-c:v", "libx264", "-pix_fmt", "yuv420p", file]);
    }
  }
  const link = datasetDir(env(), orgId, repoId);
  fs.mkdirSync(path.dirname(link), { recursive: true });
  fs.symlinkSync(build, link);
  return dataset;
}

describe("an organisation's image encoder as the visual descriptor", { timeout: 180_000 }, () => {
  let encoderId: string;
  let mlpId: string;

  it("offers only the organisation's ready ONNX versions shaped as image encoders, and refuses any other with a reason", async () => {
    encoderId = await uploadModel(operator, "Scene encoder", buildImageEncoder({ width: 24, height: 16, dims: 8, batch: 1 }));
    mlpId = await uploadModel(operator, "Arm policy", buildMlp());
    const twoInputs = await uploadModel(operator, "Two inputs", buildTwoInputModel());
    const model = await db.model.findFirstOrThrow({ where: { orgId: admin.orgId, name: "Arm policy" } });
    const checkpoint = await db.modelVersion.create({ data: { orgId: admin.orgId, modelId: model.id, number: 2, status: "ready", kind: "lerobot-checkpoint", source: { kind: "upload" } } });

    const listed = await listImageEncoders(db, { orgId: admin.orgId });
    expect(listed).toEqual([expect.objectContaining({ versionId: encoderId, modelName: "Scene encoder", number: 1, width: 24, height: 16, dims: 8 })]);

    const dataset = await datasetWith(admin.orgId, { cameras: ["front"], episodes: 2 });
    const start = (imageEncoderVersionId: string, metrics: ("v" | "h" | "t")[] = ["v"]) => startEvaluation(db, { actor: operator, input: { datasetId: dataset.id, metrics, imageEncoderVersionId } });
    await expect(start(mlpId)).rejects.toMatchObject({ code: "BAD_REQUEST", message: 'Version 1 of Arm policy cannot be the image encoder: its input "x" has shape [batch, 4]; an image encoder takes [1, 3, H, W] or [N, 3, H, W]' });
    await expect(start(twoInputs)).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/it has 3 inputs|it has 2 inputs; an image encoder has one/) });
    await expect(start(checkpoint.id)).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/is a training checkpoint, not an ONNX model/) });
    await expect(start(encoderId, ["h", "t"])).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/visual diversity \(v\) only/) });
    await expect(start(crypto.randomUUID())).rejects.toMatchObject({ code: "NOT_FOUND" });

    // Another organisation can neither list nor use it.
    const other = (await createOrgWithMember(db, "operator")).actor;
    expect(await listImageEncoders(db, { orgId: other.orgId })).toEqual([]);
    const theirs = await datasetWith(other.orgId, { cameras: ["front"], episodes: 2 });
    await expect(startEvaluation(db, { actor: other, input: { datasetId: theirs.id, metrics: ["v"], imageEncoderVersionId: encoderId } })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(await db.datasetEvaluation.count({ where: { datasetId: { in: [dataset.id, theirs.id] } } })).toBe(0);
  });

  it("makes v's descriptors with the encoder's embeddings, names it in the report, and shows sample frames per camera with their sharpness and brightness", async () => {
    const dataset = await datasetWith(admin.orgId, { cameras: ["front", "wrist"], episodes: 5 });
    const { evaluationId, jobId } = await startEvaluation(db, { actor: operator, input: { datasetId: dataset.id, metrics: ["h", "v"], framesPerEpisode: 4, imageEncoderVersionId: encoderId } });
    const done = await finished(evaluationId);
    expect(done.status, done.error ?? "").toBe("succeeded");
    expect(done.imageEncoderVersionId).toBe(encoderId);
    const report = (await getEvaluation(db, { orgId: admin.orgId, evaluationId })).report!;
    expect(report.descriptorModel).toEqual({ versionId: encoderId, modelId: expect.any(String), modelName: "Scene encoder", number: 1, width: 24, height: 16, dims: 8 });
    expect(report.descriptor).toMatch(/^Image embeddings from Scene encoder version 1 .*24×16/);
    const v = report.metrics.find((m) => m.code === "v")!;
    const spread = v.subScores.find((s) => s.key === "visual-spread")!;
    expect(spread.explain).toMatch(/cosine similarity/);
    expect(spread.value).toBeGreaterThan(0);
    expect(report.visualMap.map((p) => p.index)).toEqual([0, 1, 2, 3, 4]);
    const events = (await db.jobEvent.findMany({ where: { jobId } })).map((e) => `${e.step ?? ""} ${e.message ?? ""}`).join("\n");
    expect(events).toMatch(/Loading the image encoder Scene encoder version 1/);

    // Four frames per camera, spread over the episodes, each a small JPEG with the numbers the h metric read off it.
    expect(report.sampleFrames.map((f) => `${f.camera} ${f.episode}`)).toEqual(["front 0", "front 1", "front 3", "front 4", "wrist 0", "wrist 1", "wrist 3", "wrist 4"]);
    for (const f of report.sampleFrames) {
      const jpeg = Buffer.from(f.dataUrl.slice("data:image/jpeg;base64,".length), "base64");
      expect(jpeg.subarray(0, 2).toString("hex")).toBe("ffd8");
      expect(jpeg.length).toBeLessThanOrEqual(SAMPLE_FRAME_MAX_BYTES);
      expect(f).toMatchObject({ width: 64, height: 48, frame: 12 }); // the middle of the samples at 2, 7, 12, 17
      expect(f.laplacianVar).toBeGreaterThan(0);
      expect(f.luma).toBeGreaterThan(0);
      expect(f.luma).toBeLessThan(255);
    }
    expect(report.sampleFramesExplain).toMatch(/variance of the Laplacian.*under 50 .*blurred.*mean grey level/);

    // The same build scored without the encoder is not the encoder's report again: it is scored afresh from the frames alone.
    const plain = await startEvaluation(db, { actor: operator, input: { datasetId: dataset.id, metrics: ["h", "v"], framesPerEpisode: 4 } });
    expect((await finished(plain.evaluationId)).status).toBe("succeeded");
    const plainReport = (await getEvaluation(db, { orgId: admin.orgId, evaluationId: plain.evaluationId })).report!;
    expect(plainReport.descriptorModel).toBeNull();
    expect(plainReport.descriptor).toMatch(/8×8 grey thumbnail/);
    expect(plainReport.metrics.find((m) => m.code === "v")!.subScores.find((s) => s.key === "visual-spread")!.value).not.toBe(spread.value);
    // h does not depend on the descriptor.
    expect(plainReport.metrics.find((m) => m.code === "h")!.score).toBe(report.metrics.find((m) => m.code === "h")!.score);
  });
});

describe("a dataset without cameras", { timeout: 120_000 }, () => {
  it("leaves high-fidelity vision unmeasured, saying why, and a gate asking for it fails naming the reason", async () => {
    const dataset = await datasetWith(admin.orgId, { cameras: [] });
    const { evaluationId } = await startEvaluation(db, { actor: operator, input: { datasetId: dataset.id, metrics: ["h", "v", "t"], framesPerEpisode: 4 } });
    expect((await finished(evaluationId)).status).toBe("succeeded");
    const detail = await getEvaluation(db, { orgId: admin.orgId, evaluationId });
    const report = detail.report!;
    const h = report.metrics.find((m) => m.code === "h")!;
    expect(h.score).toBeNull();
    expect(h.summary).toBe("The dataset has no camera, so there is no picture to judge.");
    expect(h.notes.join(" ")).toMatch(/not measured/);
    expect(detail.scores).toMatchObject({ h: null });
    const measured = report.metrics.filter((m) => m.score !== null).map((m) => m.score!);
    expect(report.overall).toBeCloseTo(measured.reduce((a, b) => a + b, 0) / measured.length, 4);
    expect(report.sampleFrames).toEqual([]);

    await setQualityGate(db, { actor: admin, gate: { enabled: true, overall: null, metrics: { h: 0.5 } } });
    try {
      expect(await checkQualityGate(db, { orgId: admin.orgId, datasetId: dataset.id })).toMatchObject({
        passed: false,
        failures: ["High-fidelity vision was not measured (the dataset has no camera, so there is no picture to judge), and the gate asks for 0.50"],
      });
    } finally {
      await setQualityGate(db, { actor: admin, gate: { enabled: false, overall: null, metrics: {} } });
    }
  });

  it("says so when the dataset has cameras but came without their videos", async () => {
    const dataset = await datasetWith(admin.orgId, { cameras: [] });
    await db.dataset.update({ where: { id: dataset.id }, data: { missingVideos: ["observation.images.front"] } });
    const { evaluationId } = await startEvaluation(db, { actor: operator, input: { datasetId: dataset.id, metrics: ["h"], framesPerEpisode: 4 } });
    expect((await finished(evaluationId)).status).toBe("succeeded");
    const report = (await getEvaluation(db, { orgId: admin.orgId, evaluationId })).report!;
    const h = report.metrics.find((m) => m.code === "h")!;
    expect(h).toMatchObject({ score: null, summary: "The dataset came without its cameras' videos (observation.images.front), so there is no picture to judge." });
    expect(h.notes.join(" ")).not.toMatch(/has no camera/);
    expect(report.episodes.every((e) => e.findings.some((f) => f.flag === "missing-video"))).toBe(true);
  });
});
