import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { jpegFrames, pngFrame } from "../../tests/helpers/capture-frames";
import type { OrgActor } from "../auth/roles";
import type { BlobStore } from "../storage/blob-store";
import { createLocalBlobStore } from "../storage/local-blob-store";
import { sweepReleasedBlobs } from "./blob-refs";
import type { UploadBody } from "./body";
import { chunkManifestSchema, createCaptureInput, postJointsInput } from "./captures.schemas";
import { addFrame, findChunk } from "./frames.service";
import { getLatestJointState, postJointState } from "./joints.service";
import type { CaptureLimits } from "./limits";
import { createCaptureSession, deleteCaptureSession, getCaptureSession, listCaptureSessions, resetCaptureSession, startCaptureSession, stopCaptureSession } from "./sessions.service";

// Sessions, frames, chunk manifests and joint states against a real Postgres and a blob
// folder: what is stored, what is refused (and that a refusal stores nothing), and what a
// reset or a delete lets go of.

const db = testDb();
let root: string;
let blobs: BlobStore;
let jpegs: Buffer[];
const limits: CaptureLimits = { maxFrameBytes: 256 * 1024, framesPerSecond: 1000, jointStatesPerSecond: 1000, maxSnapshotBytes: 64 * 1024 ** 2, maxSnapshots: 50, trainerSilentMs: 30_000 };

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-capture-"));
  blobs = createLocalBlobStore({ root });
  jpegs = await jpegFrames(30);
});
afterAll(() => fs.rm(root, { recursive: true, force: true }));

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function upload(bytes: Uint8Array, contentType = "image/jpeg"): UploadBody {
  return { body: new Blob([new Uint8Array(bytes)]).stream(), contentType, declaredBytes: bytes.length };
}

function multipart(field: string, bytes: Uint8Array): UploadBody {
  const form = new FormData();
  form.append(field, new Blob([new Uint8Array(bytes)], { type: "image/png" }), "frame.png");
  const request = new Request("http://localhost/", { method: "POST", body: form });
  return { body: request.body, contentType: request.headers.get("content-type"), declaredBytes: null };
}

async function blobCount(): Promise<number> {
  const walk = async (dir: string): Promise<number> => {
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    let n = 0;
    for (const e of entries) n += e.isDirectory() ? await walk(path.join(dir, e.name)) : 1;
    return n;
  };
  return walk(path.join(root, "sha256"));
}

async function newSession(actor: OrgActor, input: Partial<{ name: string; chunkSize: number; robotId: string | null }> = {}) {
  return createCaptureSession(db, { actor, input: createCaptureInput.parse({ name: "Bench scene", ...input }), limits });
}

describe("capture sessions", () => {
  it("are created active, one at a time per organisation; stop, start, reset and delete are audited", async () => {
    const { actor, orgId } = await createOrgWithMember(db, "admin");
    const session = await newSession(actor, { name: "Kitchen table" });
    expect(session).toMatchObject({ name: "Kitchen table", status: "active", chunkSize: 50, frameCount: 0, generation: 0, trainer: { state: "none" } });
    await expect(newSession(actor, { name: "Second" })).rejects.toMatchObject({ code: "CONFLICT", message: expect.stringMatching(/"Kitchen table" is capturing; stop it first/) });

    const stopped = await stopCaptureSession(db, { actor, sessionId: session.id, blobs, limits });
    expect(stopped.session).toMatchObject({ status: "stopped", stoppedAt: expect.any(Date) });
    expect(stopped.chunks).toEqual([]);
    const second = await newSession(actor, { name: "Second" });
    await expect(startCaptureSession(db, { actor, sessionId: session.id, limits })).rejects.toMatchObject({ code: "CONFLICT" });
    await stopCaptureSession(db, { actor, sessionId: second.id, blobs, limits });
    expect(await startCaptureSession(db, { actor, sessionId: session.id, limits })).toMatchObject({ status: "active", stoppedAt: null });

    expect((await listCaptureSessions(db, { actor, limits })).map((s) => s.name)).toEqual(["Second", "Kitchen table"]);
    await resetCaptureSession(db, { actor, sessionId: session.id, limits });
    await deleteCaptureSession(db, { actor, sessionId: second.id });
    await expect(getCaptureSession(db, { actor, sessionId: second.id, limits })).rejects.toMatchObject({ code: "NOT_FOUND" });
    const audit = await db.auditEvent.findMany({ where: { orgId, action: { startsWith: "capture." } }, orderBy: { id: "asc" } });
    expect(audit.map((a) => [a.action, a.target])).toEqual([
      ["capture.create", "Kitchen table"],
      ["capture.stop", "Kitchen table"],
      ["capture.create", "Second"],
      ["capture.stop", "Second"],
      ["capture.start", "Kitchen table"],
      ["capture.reset", "Kitchen table"],
      ["capture.delete", "Second"],
    ]);
  });

  it("take their arm from the organisation's robots only, and are invisible to other organisations", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const other = await createOrgWithMember(db, "owner");
    const agent = await db.agent.create({ data: { orgId: other.orgId, name: "elsewhere" } });
    const foreignArm = await db.robot.create({ data: { orgId: other.orgId, agentId: agent.id, name: "their-arm", role: "follower", type: "so101_follower", protocol: "feetech", motors: [] } });
    await expect(newSession(actor, { robotId: foreignArm.id })).rejects.toMatchObject({ code: "NOT_FOUND" });
    const ownAgent = await db.agent.create({ data: { orgId: actor.orgId, name: "bench" } });
    const arm = await db.robot.create({ data: { orgId: actor.orgId, agentId: ownAgent.id, name: "follower-1", role: "follower", type: "so101_follower", protocol: "feetech", motors: [] } });
    const session = await newSession(actor, { robotId: arm.id });
    expect(session).toMatchObject({ robotId: arm.id, robotName: "follower-1" });
    await expect(getCaptureSession(db, { actor: other.owner, sessionId: session.id, limits })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(addFrame(db, { actor: other.owner, sessionId: session.id, upload: upload(jpegs[0]), blobs, limits })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(resetCaptureSession(db, { actor: other.owner, sessionId: session.id, limits })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});

describe("frames", () => {
  it("are stored as they arrive, numbered, and chunked every N frames with the nearest joint state; stopping chunks the rest", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const session = await newSession(actor, { chunkSize: 5 });
    const t0 = Date.UTC(2026, 11, 4, 12, 0, 0);
    // Joint states 100 ms apart; frames at 40 ms steps, so each frame's nearest pose is known.
    for (let i = 0; i < 12; i++) {
      await postJointState(db, { actor, sessionId: session.id, input: postJointsInput.parse({ joint_angles: [i / 10, 0, 0, 0, 0, 0], t: t0 + i * 100 }), limits });
    }
    const receipts = [];
    for (let i = 0; i < 12; i++) receipts.push(await addFrame(db, { actor, sessionId: session.id, upload: upload(jpegs[i]), t: t0 + i * 40, blobs, limits }));
    expect(receipts.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(receipts[3]).toMatchObject({ frameCount: 4, chunkCount: 0, format: "jpeg", width: 64, height: 48, sha256: sha(jpegs[3]) });
    expect(receipts[4].chunkCount).toBe(1);
    expect(receipts[11]).toMatchObject({ frameCount: 12, chunkCount: 2 });
    for (const i of [0, 7, 11]) expect(await blobs.has(sha(jpegs[i]))).toBe(true);

    const chunk = await findChunk(db, { actor, sessionId: session.id, index: "2" });
    const manifest = chunkManifestSchema.parse(JSON.parse(await readBlob(chunk.sha256)));
    expect(manifest).toMatchObject({ sessionId: session.id, generation: 0, index: 2 });
    expect(manifest.frames.map((f) => f.seq)).toEqual([6, 7, 8, 9, 10]);
    expect(manifest.frames[0]).toMatchObject({ sha256: sha(jpegs[5]), t: t0 + 200, format: "jpeg", width: 64, height: 48 });
    // Frame 7 was taken at +240 ms: the pose at +200 is nearer than the one at +300.
    expect(manifest.frames[1].joints).toEqual({ t: t0 + 200, angles: [0.2, 0, 0, 0, 0, 0] });
    expect(manifest.frames[2].joints).toEqual({ t: t0 + 300, angles: [0.3, 0, 0, 0, 0, 0] });

    const stopped = await stopCaptureSession(db, { actor, sessionId: session.id, blobs, limits });
    expect(stopped.chunks.map((c) => [c.index, c.firstSeq, c.lastSeq, c.frameCount])).toEqual([[1, 1, 5, 5], [2, 6, 10, 5], [3, 11, 12, 2]]);
    await expect(addFrame(db, { actor, sessionId: session.id, upload: upload(jpegs[12]), blobs, limits })).rejects.toMatchObject({ code: "CONFLICT", message: expect.stringMatching(/is stopped and takes no frames/) });
    const detail = await getCaptureSession(db, { actor, sessionId: session.id, limits });
    expect(detail).toMatchObject({ frameCount: 12, lastSeq: 12, chunkCount: 3, latestJoints: { t: t0 + 1100, angles: [1.1, 0, 0, 0, 0, 0] } });
  });

  it("are taken as a multipart form field `image` (or the earlier `file`), PNG as well as JPEG", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const session = await newSession(actor);
    const png = pngFrame(40, 30, 7);
    expect(await addFrame(db, { actor, sessionId: session.id, upload: multipart("image", png), blobs, limits })).toMatchObject({ seq: 1, format: "png", width: 40, height: 30, sha256: sha(png) });
    expect(await addFrame(db, { actor, sessionId: session.id, upload: multipart("file", jpegs[20]), blobs, limits })).toMatchObject({ seq: 2, format: "jpeg" });
    await expect(addFrame(db, { actor, sessionId: session.id, upload: multipart("notes", Buffer.from("hello")), blobs, limits })).rejects.toMatchObject({ code: "BAD_REQUEST" });
  });

  it("that are not images, are too big or are cut short are refused, and nothing is stored", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const session = await newSession(actor);
    const before = await blobCount();
    const big = Buffer.concat([jpegs[0].subarray(0, jpegs[0].length - 2), Buffer.alloc(limits.maxFrameBytes), Buffer.from([0xff, 0xd9])]);
    const cases: [UploadBody, string, RegExp][] = [
      [upload(Buffer.from("%PDF-1.7 not a frame"), "image/jpeg"), "BAD_REQUEST", /neither a JPEG nor a PNG/],
      [upload(big), "PAYLOAD_TOO_LARGE", /larger than the 256 KiB CAPTURE_MAX_FRAME_BYTES allows/],
      [{ ...upload(big), declaredBytes: null }, "PAYLOAD_TOO_LARGE", /CAPTURE_MAX_FRAME_BYTES/],
      [upload(jpegs[1].subarray(0, jpegs[1].length - 100)), "BAD_REQUEST", /cut short/],
      [upload(pngFrame(20, 20).subarray(0, 50), "image/png"), "BAD_REQUEST", /cut short/],
      [upload(new Uint8Array(0)), "BAD_REQUEST", /empty/],
    ];
    for (const [body, code, message] of cases) await expect(addFrame(db, { actor, sessionId: session.id, upload: body, blobs, limits })).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
    expect(await blobCount()).toBe(before);
    expect(await db.captureFrame.count({ where: { sessionId: session.id } })).toBe(0);
    expect(await getCaptureSession(db, { actor, sessionId: session.id, limits })).toMatchObject({ lastSeq: 0, frameCount: 0 });
  });

  it("past the session's rate get 429 with a message, and are not stored", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const session = await newSession(actor);
    const slow = { ...limits, framesPerSecond: 5 };
    // A window can turn over mid-burst; sending twice the rate within a second is refused at least once.
    const outcomes = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => addFrame(db, { actor, sessionId: session.id, upload: upload(jpegs[i]), blobs, limits: slow })));
    const refused = outcomes.filter((o) => o.status === "rejected").map((o) => (o as PromiseRejectedResult).reason);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]).toMatchObject({ code: "RATE_LIMITED", status: 429, message: expect.stringMatching(/^Too many frames for this capture session \(CAPTURE_FRAMES_PER_SECOND allows 5 a second\); try again in a second$/) });
    expect(await db.captureFrame.count({ where: { sessionId: session.id } })).toBe(10 - refused.length);
  });
});

describe("joint states", () => {
  it("are six radians each, rate-limited, and the latest is readable", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const session = await newSession(actor);
    expect(await getLatestJointState(db, { actor, sessionId: session.id })).toBeNull();
    expect(postJointsInput.safeParse({ joint_angles: [0, 1, 2] }).error?.issues[0].message).toMatch(/exactly 6 angles/);
    expect(postJointsInput.safeParse({ joint_angles: [90, 0, 0, 0, 0, 0] }).error?.issues[0].message).toMatch(/look like degrees/);
    const posted = await postJointState(db, { actor, sessionId: session.id, input: postJointsInput.parse({ joint_angles: [0.1, -0.2, 0.3, -0.4, 0.5, 1.2] }), limits });
    expect(await getLatestJointState(db, { actor, sessionId: session.id })).toEqual(posted);
    const slow = { ...limits, jointStatesPerSecond: 3 };
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, () => postJointState(db, { actor, sessionId: session.id, input: postJointsInput.parse({ joint_angles: [0, 0, 0, 0, 0, 0] }), limits: slow })));
    expect(outcomes.some((o) => o.status === "rejected" && (o.reason as { code: string }).code === "RATE_LIMITED")).toBe(true);
  });
});

describe("reset and delete", () => {
  it("clear frames, chunks, joints and snapshots, keep the numbering going, and free blobs no other session names", async () => {
    const { actor } = await createOrgWithMember(db, "admin");
    const session = await newSession(actor, { chunkSize: 3 });
    const own = [pngFrame(16, 16, 1001), pngFrame(16, 16, 1002), pngFrame(16, 16, 1003)];
    const shared = pngFrame(16, 16, 1004);
    for (const frame of [...own, shared]) await addFrame(db, { actor, sessionId: session.id, upload: upload(frame, "image/png"), blobs, limits });
    await postJointState(db, { actor, sessionId: session.id, input: postJointsInput.parse({ joint_angles: [0, 0, 0, 0, 0, 0] }), limits });
    const chunkSha = (await findChunk(db, { actor, sessionId: session.id, index: "1" })).sha256;
    await stopCaptureSession(db, { actor, sessionId: session.id, blobs, limits });
    // Another session holds the same bytes as one of this session's frames.
    const other = await newSession(actor, { name: "Other scene" });
    await addFrame(db, { actor, sessionId: other.id, upload: upload(shared, "image/png"), blobs, limits });

    const reset = await resetCaptureSession(db, { actor, sessionId: session.id, limits });
    expect(reset).toMatchObject({ generation: 1, frameCount: 0, chunkCount: 0, snapshotCount: 0, lastSeq: 4, status: "stopped" });
    expect(await db.captureFrame.count({ where: { sessionId: session.id } })).toBe(0);
    expect(await getLatestJointState(db, { actor, sessionId: session.id })).toBeNull();
    await expect(findChunk(db, { actor, sessionId: session.id, index: "1" })).rejects.toMatchObject({ code: "NOT_FOUND" });

    // The same bytes as another frame are a file of a model version: another domain's blob.
    const model = await db.model.create({ data: { orgId: actor.orgId, name: `frames-${session.id.slice(0, 8)}` } });
    await db.modelVersion.create({ data: { orgId: actor.orgId, modelId: model.id, number: 1, status: "ready", kind: "lerobot-checkpoint", source: { kind: "training" }, files: [{ path: "frame.png", sha256: sha(own[2]), bytes: own[2].length }] } });

    const swept = await sweepReleasedBlobs(db, { blobs });
    expect(swept.removed).toBeGreaterThanOrEqual(4);
    for (const frame of own.slice(0, 2)) expect(await blobs.has(sha(frame)), "a frame only this session held").toBe(false);
    expect(await blobs.has(sha(own[2])), "bytes a model version names too").toBe(true);
    expect(await blobs.has(chunkSha)).toBe(false);
    expect(await blobs.has(sha(shared)), "a frame another session also holds").toBe(true);

    // Numbering goes on after a reset: a trainer's cursor never points at a reused number.
    await stopCaptureSession(db, { actor, sessionId: other.id, blobs, limits });
    await startCaptureSession(db, { actor, sessionId: session.id, limits });
    expect(await addFrame(db, { actor, sessionId: session.id, upload: upload(own[0], "image/png"), blobs, limits })).toMatchObject({ seq: 5, frameCount: 1 });
    expect(await blobs.has(sha(own[0]))).toBe(true);

    await deleteCaptureSession(db, { actor, sessionId: other.id });
    await sweepReleasedBlobs(db, { blobs });
    expect(await blobs.has(sha(shared))).toBe(false);
  });
});

async function readBlob(sha256: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of await blobs.get(sha256)) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
