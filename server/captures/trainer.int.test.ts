import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { pngFrame } from "../../tests/helpers/capture-frames";
import type { OrgActor } from "../auth/roles";
import { RealtimeHub } from "../jobs/realtime";
import type { BlobStore } from "../storage/blob-store";
import { createLocalBlobStore } from "../storage/local-blob-store";
import type { UploadBody } from "./body";
import { createCaptureInput, listSnapshotsInput } from "./captures.schemas";
import { addFrame, listFrames } from "./frames.service";
import { postJointState } from "./joints.service";
import type { CaptureLimits } from "./limits";
import { parsePly, writePly } from "./ply";
import { serveSnapshotFile } from "./serve-snapshot";
import { createCaptureSession, getCaptureSession, resetCaptureSession } from "./sessions.service";
import { encodeSpz } from "./spz";
import { randomCloud } from "./test-clouds";
import { claimSession, findSnapshotFile, heartbeat, listSnapshots, pushSnapshot, releaseLease } from "./trainer.service";

// The trainer's side: leases that lapse when a trainer goes silent, frames read from a cursor
// (a long poll woken through Postgres NOTIFY), snapshots pushed, checked, kept and served.

const db = testDb();
const hubs: RealtimeHub[] = [];
let root: string;
let blobs: BlobStore;
const limits: CaptureLimits = { maxFrameBytes: 1024 * 1024, framesPerSecond: 1000, jointStatesPerSecond: 1000, maxSnapshotBytes: 16 * 1024 ** 2, maxSnapshots: 50, trainerSilentMs: 30_000 };

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-trainer-"));
  blobs = createLocalBlobStore({ root });
});
afterAll(async () => {
  await Promise.all(hubs.map((h) => h.stop()));
  await fs.rm(root, { recursive: true, force: true });
});

/** A LISTEN connection of its own, as another web process would hold. */
function newHub(): RealtimeHub {
  const hub = new RealtimeHub({ url: process.env.DATABASE_URL!, db, jobEvents: false });
  hubs.push(hub);
  return hub;
}

const body = (bytes: Uint8Array): UploadBody => ({ body: new Blob([new Uint8Array(bytes)]).stream(), contentType: "application/octet-stream", declaredBytes: bytes.length });
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function blobCount(): Promise<number> {
  const walk = async (dir: string): Promise<number> => {
    let n = 0;
    for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) n += e.isDirectory() ? await walk(path.join(dir, e.name)) : 1;
    return n;
  };
  return walk(path.join(root, "sha256"));
}

/** The poll's answer, if it comes well before its 25 s wait runs out (only a notification can bring it sooner). */
async function beforeDeadline<T>(poll: Promise<T>): Promise<T> {
  const gaveUp = Symbol("gave up");
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([poll, new Promise<typeof gaveUp>((resolve) => (timer = setTimeout(() => resolve(gaveUp), 10_000)))]);
  clearTimeout(timer);
  if (result === gaveUp) throw new Error("The long poll was not woken by the notification");
  return result as T;
}

async function activeSession(actor: OrgActor) {
  return createCaptureSession(db, { actor, input: createCaptureInput.parse({ name: "Workbench" }), limits });
}

describe("trainer leases", () => {
  it("are refused while another trainer is heard from, lapse after silence, and pass to the next trainer", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const session = await activeSession(actor);
    const first = await claimSession(db, { actor, sessionId: session.id, input: { trainer: "gpu-a" }, limits });
    expect(first).toMatchObject({ sessionId: session.id, status: "active", generation: 0, silentAfterMs: 30_000 });
    expect((await getCaptureSession(db, { actor, sessionId: session.id, limits })).trainer).toMatchObject({ state: "active", name: "gpu-a" });
    await expect(claimSession(db, { actor, sessionId: session.id, input: { trainer: "gpu-b" }, limits })).rejects.toMatchObject({ code: "CONFLICT", message: expect.stringMatching(/Trainer "gpu-a" holds capture session "Workbench"/) });

    expect(await heartbeat(db, { actor, sessionId: session.id, input: { claimId: first.claimId, iteration: 100, gaussians: 5000, progress: 0.25 }, limits })).toMatchObject({ claimId: first.claimId });
    expect((await getCaptureSession(db, { actor, sessionId: session.id, limits })).trainer).toMatchObject({ iteration: 100, gaussians: 5000, progress: 0.25 });

    // Its last heartbeat 31 s ago: silent, and the session is free to claim.
    await db.captureSession.update({ where: { id: session.id }, data: { trainerSeenAt: new Date(Date.now() - 31_000) } });
    expect((await getCaptureSession(db, { actor, sessionId: session.id, limits })).trainer.state).toBe("silent");
    const second = await claimSession(db, { actor, sessionId: session.id, input: { trainer: "gpu-b" }, limits });
    expect(second.claimId).not.toBe(first.claimId);
    await expect(heartbeat(db, { actor, sessionId: session.id, input: { claimId: first.claimId, iteration: 101, gaussians: 5000 }, limits })).rejects.toMatchObject({
      code: "CONFLICT",
      message: expect.stringMatching(/lapsed and trainer "gpu-b" claimed it/),
    });
    await expect(pushSnapshot(db, { actor, sessionId: session.id, claimId: first.claimId, iteration: 1, upload: body(writePly(randomCloud(10, 0, 1))), blobs, limits })).rejects.toMatchObject({ code: "CONFLICT" });

    // A trainer that restarts under its own name takes its lease back at once.
    const again = await claimSession(db, { actor, sessionId: session.id, input: { trainer: "gpu-b" }, limits });
    await expect(heartbeat(db, { actor, sessionId: session.id, input: { claimId: second.claimId, iteration: 1, gaussians: 1 }, limits })).rejects.toMatchObject({ code: "CONFLICT" });
    await releaseLease(db, { actor, sessionId: session.id, claimId: again.claimId });
    expect((await getCaptureSession(db, { actor, sessionId: session.id, limits })).trainer.state).toBe("none");
    expect(await claimSession(db, { actor, sessionId: session.id, input: { trainer: "gpu-c" }, limits })).toMatchObject({ sessionId: session.id });
  });

  it("of another organisation's trainer do not reach the session: 404, as if it did not exist", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const session = await activeSession(actor);
    const lease = await claimSession(db, { actor, sessionId: session.id, input: { trainer: "ours" }, limits });
    const stranger = (await createOrgWithMember(db, "owner")).owner;
    const hub = newHub();
    for (const attempt of [
      () => claimSession(db, { actor: stranger, sessionId: session.id, input: { trainer: "theirs" }, limits }),
      () => heartbeat(db, { actor: stranger, sessionId: session.id, input: { claimId: lease.claimId, iteration: 1, gaussians: 1 }, limits }),
      () => pushSnapshot(db, { actor: stranger, sessionId: session.id, claimId: lease.claimId, iteration: 1, upload: body(writePly(randomCloud(10, 0, 1))), blobs, limits }),
      () => listFrames(db, { actor: stranger, sessionId: session.id, after: 0, wait: 0, limit: 10, hub }),
      () => listSnapshots(db, { actor: stranger, input: listSnapshotsInput.parse({ sessionId: session.id }) }),
    ]) {
      await expect(attempt()).rejects.toMatchObject({ code: "NOT_FOUND", message: "No such capture session in this organisation" });
    }
  });
});

describe("frames for a trainer", () => {
  it("come after its cursor, and a long poll on one process is woken by a frame stored through another", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const session = await activeSession(actor);
    for (let i = 0; i < 3; i++) await addFrame(db, { actor, sessionId: session.id, upload: body(pngFrame(16, 16, 2000 + i)), t: 1_000_000 + i * 100, blobs, limits });
    await postJointState(db, { actor, sessionId: session.id, input: { joint_angles: [0.3, 0, 0, 0, 0, 0], t: 1_000_190 }, limits });
    const trainerHub = newHub();
    const page = await listFrames(db, { actor, sessionId: session.id, after: 1, wait: 0, limit: 10, hub: trainerHub });
    expect(page).toMatchObject({ status: "active", generation: 0, cursor: 3, lastSeq: 3 });
    expect(page.frames.map((f) => [f.seq, f.url])).toEqual([[2, `/api/captures/${session.id}/frames/2`], [3, `/api/captures/${session.id}/frames/3`]]);
    // Each with the pose nearest it, so a trainer can place the camera.
    expect(page.frames[1].joints).toEqual({ t: 1_000_190, angles: [0.3, 0, 0, 0, 0, 0] });

    // No periodic re-check for a minute: only the notification can end this wait early.
    const waiting = listFrames(db, { actor, sessionId: session.id, after: 3, wait: 25, limit: 10, hub: trainerHub, recheckMs: 60_000 });
    await trainerHub.ensureConnected();
    await new Promise((r) => setTimeout(r, 300));
    const frame = pngFrame(16, 16, 2100);
    await addFrame(db, { actor, sessionId: session.id, upload: body(frame), blobs, limits });
    const woken = await beforeDeadline(waiting);
    expect(woken.frames).toMatchObject([{ seq: 4, sha256: sha(frame), format: "png", width: 16, height: 16 }]);
    expect(woken.cursor).toBe(4);

    // A reset wakes it too, and says the generation changed.
    const waitingForReset = listFrames(db, { actor, sessionId: session.id, after: 4, wait: 25, limit: 10, hub: trainerHub, recheckMs: 60_000 });
    await new Promise((r) => setTimeout(r, 300));
    await resetCaptureSession(db, { actor, sessionId: session.id, limits });
    expect(await beforeDeadline(waitingForReset)).toMatchObject({ frames: [], generation: 1, cursor: 4 });

    // A poll abandoned by its caller ends at once.
    const controller = new AbortController();
    const abandoned = listFrames(db, { actor, sessionId: session.id, after: 4, wait: 25, limit: 10, hub: trainerHub, recheckMs: 60_000, signal: controller.signal });
    await new Promise((r) => setTimeout(r, 200));
    controller.abort();
    expect((await abandoned).frames).toEqual([]);
  });
});

describe("snapshots", () => {
  it("are taken as PLY or SPZ from the lease holder, kept with their SPZ, listed newest first and served", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const session = await activeSession(actor);
    await addFrame(db, { actor, sessionId: session.id, upload: body(pngFrame(16, 16, 3000)), blobs, limits });
    const lease = await claimSession(db, { actor, sessionId: session.id, input: { trainer: "stand-in" }, limits });

    const plyCloud = randomCloud(400, 1, 11);
    const ply = writePly(plyCloud);
    const fromPly = await pushSnapshot(db, { actor, sessionId: session.id, claimId: lease.claimId, iteration: 500, upload: body(ply), blobs, limits });
    expect(fromPly).toMatchObject({ iteration: 500, format: "ply", splats: 400, shDegree: 1, sourceSha256: sha(ply), sourceBytes: ply.length, trainerName: "stand-in", lastSeq: 1, frameCount: 1 });
    expect(fromPly.spzBytes).toBeLessThan(ply.length);
    expect(fromPly.spzUrl).toBe(`/api/captures/${session.id}/snapshots/${fromPly.id}.spz`);

    const spz = encodeSpz(randomCloud(900, 2, 12));
    const fromSpz = await pushSnapshot(db, { actor, sessionId: session.id, claimId: lease.claimId, iteration: 1000, generation: 0, upload: body(spz), blobs, limits });
    expect(fromSpz).toMatchObject({ format: "spz", splats: 900, shDegree: 2, sourceSha256: sha(spz), spzSha256: sha(spz) });

    const detail = await getCaptureSession(db, { actor, sessionId: session.id, limits });
    expect(detail).toMatchObject({ snapshotCount: 2, latestSnapshot: { id: fromSpz.id }, trainer: { iteration: 1000, gaussians: 900 } });
    const timeline = await listSnapshots(db, { actor, input: listSnapshotsInput.parse({ sessionId: session.id }) });
    expect(timeline.map((s) => s.id)).toEqual([fromSpz.id, fromPly.id]);
    expect((await listSnapshots(db, { actor, input: listSnapshotsInput.parse({ sessionId: session.id, before: fromSpz.id }) })).map((s) => s.id)).toEqual([fromPly.id]);

    // The PLY as pushed, byte for byte; the SPZ the viewer streams with an ETag and ranges.
    const plyFile = await findSnapshotFile(db, { actor, sessionId: session.id, snapshotId: fromPly.id, format: "ply", blobs });
    const plyAnswer = await serveSnapshotFile({ blobs, file: plyFile, headers: new Headers() });
    expect(Buffer.from(await plyAnswer.arrayBuffer()).equals(ply)).toBe(true);
    const spzFile = await findSnapshotFile(db, { actor, sessionId: session.id, snapshotId: fromPly.id, format: "spz", blobs });
    const ranged = await serveSnapshotFile({ blobs, file: spzFile, headers: new Headers({ range: "bytes=0-15" }) });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("etag")).toBe(`"${fromPly.spzSha256}"`);
    // An SPZ upload's PLY is written from its splats when asked for.
    const converted = await findSnapshotFile(db, { actor, sessionId: session.id, format: "ply", blobs });
    expect(converted.kind).toBe("converted");
    const convertedAnswer = await serveSnapshotFile({ blobs, file: converted, headers: new Headers() });
    expect(parsePly(new Uint8Array(await convertedAnswer.arrayBuffer()))).toMatchObject({ count: 900, shDegree: 2 });
  });

  it("that are hostile or malformed are refused, and nothing is stored", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const session = await activeSession(actor);
    const lease = await claimSession(db, { actor, sessionId: session.id, input: { trainer: "fuzz" }, limits });
    const good = writePly(randomCloud(50, 0, 3));
    const nan = Buffer.from(good);
    nan.writeFloatLE(NaN, nan.length - 4);
    const spzHeader = Buffer.alloc(16);
    spzHeader.writeUInt32LE(0x5053474e, 0);
    spzHeader.writeUInt32LE(3, 4);
    spzHeader.writeUInt32LE(1, 8);
    spzHeader[13] = 12;
    const before = await blobCount();
    const cases: [Uint8Array, RegExp][] = [
      [Buffer.from("ply\nformat binary_little_endian 1.0\nelement vertex 2147483648\nproperty float x\nend_header\n"), /splats|lacks/],
      [nan, /NaN or infinite/],
      [good.subarray(0, good.length - 7), /cut short/],
      [zlib.gzipSync(Buffer.concat([spzHeader, Buffer.alloc(8 * 1024 * 1024)])), /more than the \d+ bytes its header implies/],
      [Buffer.from("<html>a login page</html>"), /must be a binary little-endian/],
      [new Uint8Array(0), /empty/],
    ];
    for (const [file, message] of cases) {
      await expect(pushSnapshot(db, { actor, sessionId: session.id, claimId: lease.claimId, iteration: 1, upload: body(file), blobs, limits })).rejects.toMatchObject({ message: expect.stringMatching(message) });
    }
    const tooBig = { ...limits, maxSnapshotBytes: 1024 };
    await expect(pushSnapshot(db, { actor, sessionId: session.id, claimId: lease.claimId, iteration: 1, upload: body(good), blobs, limits: tooBig })).rejects.toMatchObject({ code: "PAYLOAD_TOO_LARGE", message: expect.stringMatching(/CAPTURE_MAX_SNAPSHOT_BYTES/) });
    expect(await blobCount()).toBe(before);
    expect(await db.captureSnapshot.count({ where: { sessionId: session.id } })).toBe(0);
  });

  it("trained before a reset are refused when they say so, and only the newest are kept", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const session = await activeSession(actor);
    const lease = await claimSession(db, { actor, sessionId: session.id, input: { trainer: "keeper" }, limits });
    const few = { ...limits, maxSnapshots: 2 };
    const pushed = [];
    for (let i = 0; i < 4; i++) pushed.push(await pushSnapshot(db, { actor, sessionId: session.id, claimId: lease.claimId, iteration: i, upload: body(writePly(randomCloud(20 + i, 0, 40 + i))), blobs, limits: few }));
    expect((await listSnapshots(db, { actor, input: listSnapshotsInput.parse({ sessionId: session.id }) })).map((s) => s.iteration)).toEqual([3, 2]);
    expect((await getCaptureSession(db, { actor, sessionId: session.id, limits })).snapshotCount).toBe(2);
    expect(await db.captureBlobRelease.count({ where: { sha256: pushed[0].sourceSha256 } })).toBe(1);

    await resetCaptureSession(db, { actor, sessionId: session.id, limits });
    await expect(pushSnapshot(db, { actor, sessionId: session.id, claimId: lease.claimId, iteration: 9, generation: 0, upload: body(writePly(randomCloud(10, 0, 99))), blobs, limits })).rejects.toMatchObject({
      code: "CONFLICT",
      message: expect.stringMatching(/was reset .*start training over/),
    });
    // The lease survives a reset: the trainer goes on with the new frames.
    expect(await heartbeat(db, { actor, sessionId: session.id, input: { claimId: lease.claimId, iteration: 0, gaussians: 0 }, limits })).toMatchObject({ generation: 1 });
  });
});
