import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestPortal, tempDir, type TestPortal } from "../../agent/test-helpers";
import { jpegFrames } from "../../tests/helpers/capture-frames";
import { runStandInTrainer, standInCloudSize } from "../../tests/helpers/capture-trainer";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { createApiToken } from "../auth/tokens.service";
import { createCaptureInput } from "./captures.schemas";
import { parsePly, writePly } from "./ply";
import { createCaptureSession, getCaptureSession } from "./sessions.service";
import { decodeSpz, encodeSpz } from "./spz";
import { randomCloud } from "./test-clouds";

// Live capture over HTTP, through the real route handlers served by two separate portal
// processes on one database and one blob folder, as two web processes behind a load balancer:
// the earlier system's endpoints with a stand-in trainer, and the trainer protocol across
// processes (a long poll on one woken by a frame posted to the other).

const db = testDb();
let portalA: TestPortal;
let portalB: TestPortal;
let jpegs: Buffer[];

beforeAll(async () => {
  const blobDir = tempDir("capture-blobs");
  const settings = { BLOB_DIR: blobDir, CAPTURE_FRAMES_PER_SECOND: "30", CAPTURE_TRAINER_SILENT_MS: "3000", CAPTURE_MAX_FRAME_BYTES: "1048576" };
  [portalA, portalB, jpegs] = await Promise.all([
    startTestPortal({ ...settings, GANTRY_HOME: tempDir("portal-a") }),
    startTestPortal({ ...settings, GANTRY_HOME: tempDir("portal-b") }),
    jpegFrames(40),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.all([portalA?.stop(), portalB?.stop()]);
});

async function operatorToken(): Promise<{ token: string; orgId: string; actor: Awaited<ReturnType<typeof createOrgWithMember>>["actor"] }> {
  const { actor, orgId } = await createOrgWithMember(db, "operator");
  const { token } = await createApiToken(db, { actor, input: { name: "capture rig", scopes: ["write"] } });
  return { token, orgId, actor };
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function send(portal: TestPortal, token: string, method: string, path: string, body?: BodyInit, headers: Record<string, string> = {}) {
  return fetch(`${portal.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...headers }, body });
}

/** A POST that declares `bytes` of body and sends none: what is answered before the body is read. */
function declareOnly(portal: TestPortal, token: string, path: string, bytes: number): Promise<{ status: number; body: { error: { message: string } } }> {
  return new Promise((resolve, reject) => {
    const request = http.request(`${portal.url}${path}`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "image/jpeg", "content-length": String(bytes) } }, (response) => {
      let text = "";
      response.on("data", (d: Buffer) => (text += d.toString()));
      response.on("end", () => {
        resolve({ status: response.statusCode!, body: JSON.parse(text) });
        request.destroy();
      });
    });
    request.on("error", reject);
    request.flushHeaders();
  });
}

function formWith(field: string, bytes: Uint8Array, type = "image/jpeg"): FormData {
  const form = new FormData();
  form.append(field, new Blob([new Uint8Array(bytes)], { type }), "frame.jpg");
  return form;
}

describe("the earlier live-capture endpoints", () => {
  it("answer in their own shapes, on the organisation's active session, with a stand-in trainer pushing snapshots", async () => {
    const { token } = await operatorToken();
    const json = async (portal: TestPortal, method: string, path: string, body?: BodyInit, headers?: Record<string, string>) => {
      const response = await send(portal, token, method, path, body, headers);
      expect(response.status, `${method} ${path}`).toBe(200);
      return response.json();
    };

    expect(await json(portalA, "GET", "/health")).toEqual({ status: "healthy", trainer_ready: false });
    expect(await json(portalA, "GET", "/status")).toMatchObject({ frame_count: 0, gaussian_count: 0, progress: 0, chunks_uploaded: 0, training: false });
    expect((await send(portalA, token, "GET", "/get-ply")).status).toBe(404);

    // The first frame starts a session.
    expect(await json(portalA, "POST", "/upload-frame", formWith("image", jpegs[0]))).toEqual({ success: true, frame_count: 1, chunks_uploaded: 0 });
    expect(await json(portalB, "POST", "/update-joint-angles", JSON.stringify({ joint_angles: [0, 0.5, -0.5, 1, 0, 0.2] }), { "content-type": "application/json" })).toMatchObject({
      success: true,
      joint_angles: [0, 0.5, -0.5, 1, 0, 0.2],
    });
    const wrong = await send(portalB, token, "POST", "/update-joint-angles", JSON.stringify({ joint_angles: [0, 0, 0] }), { "content-type": "application/json" });
    expect(wrong.status).toBe(400);
    expect((await wrong.json()).error.message).toMatch(/exactly 6 angles/);
    const status = await json(portalB, "GET", "/status");
    expect(status).toMatchObject({ frame_count: 1, session_status: "active" });

    const controller = new AbortController();
    const trainer = runStandInTrainer({ portal: portalA.url, token, sessionId: status.session_id, every: 5, signal: controller.signal });
    trainer.catch(() => {});
    try {
      // The earlier clients sent the file as `file`; both portals take frames for the one session.
      for (let i = 1; i < 13; i++) {
        const portal = i % 2 ? portalB : portalA;
        const answer = await json(portal, "POST", "/upload-frame", formWith(i % 3 ? "image" : "file", jpegs[i]));
        expect(answer.frame_count).toBe(i + 1);
      }
      const training = await waitFor(async () => {
        const s = await json(portalA, "GET", "/status");
        return s.gaussian_count >= standInCloudSize(10) && s;
      }, { what: "the stand-in's second snapshot" });
      expect(training).toMatchObject({ frame_count: 13, training: true, trainer: "stand-in", trainer_state: "active" });
      expect(await json(portalB, "GET", "/health")).toEqual({ status: "healthy", trainer_ready: true });

      const ply = await send(portalB, token, "GET", "/get-ply");
      expect(ply.status).toBe(200);
      expect(parsePly(new Uint8Array(await ply.arrayBuffer())).count).toBeGreaterThanOrEqual(standInCloudSize(10));

      const stopped = await json(portalA, "POST", "/stop-training");
      expect(stopped).toMatchObject({ success: true, complete: true, frame_count: 13 });
      expect(stopped.chunks).toEqual([{ index: 1, first_seq: 1, last_seq: 13, frame_count: 13, sha256: expect.stringMatching(/^[0-9a-f]{64}$/), url: `/api/captures/${status.session_id}/chunks/1` }]);
      const manifest = await json(portalB, "GET", stopped.chunks[0].url);
      expect(manifest.frames.map((f: { sha256: string }) => f.sha256)).toEqual(jpegs.slice(0, 13).map(sha));
      expect(manifest.frames[5].joints.angles).toEqual([0, 0.5, -0.5, 1, 0, 0.2]);

      // The trainer sees the stop, pushes what it has from the last frames, and lets go.
      const result = await trainer;
      expect(result.frames).toBe(13);
      expect(result.snapshots.map((s) => s.splats)).toEqual([standInCloudSize(5), standInCloudSize(10), standInCloudSize(13)]);
    } finally {
      controller.abort();
    }
    const after = await json(portalA, "GET", "/status");
    expect(after).toMatchObject({ frame_count: 13, gaussian_count: standInCloudSize(13), training: false, session_status: "stopped", trainer_state: "none" });
    expect(parsePly(new Uint8Array(await (await send(portalA, token, "GET", "/get-ply")).arrayBuffer())).count).toBe(standInCloudSize(13));
    expect(await json(portalA, "POST", "/reset")).toEqual({ success: true, message: "No capture session is active; nothing to reset" });
    expect((await json(portalA, "POST", "/stop-training")).chunks).toHaveLength(1);

    // With no session active, joint angles are answered but not kept: a robot loop posting
    // all day does not start a session the moment one is stopped.
    expect(await json(portalA, "POST", "/update-joint-angles", JSON.stringify({ joint_angles: [0, 0, 0, 0, 0, 0] }), { "content-type": "application/json" })).toMatchObject({ success: true, stored: false });
    // A new capture, then a reset of it.
    expect(await json(portalB, "POST", "/upload-frame", formWith("image", jpegs[20]))).toEqual({ success: true, frame_count: 1, chunks_uploaded: 0 });
    expect(await json(portalB, "POST", "/reset")).toMatchObject({ success: true });
    expect(await json(portalB, "GET", "/status")).toMatchObject({ frame_count: 0, session_status: "active" });
    expect((await fetch(`${portalA.url}/status`)).status).toBe(401);
  });

  it("refuse a frame that is not an image without starting a session", async () => {
    const { token, orgId } = await operatorToken();
    const refused = await send(portalA, token, "POST", "/upload-frame", formWith("image", Buffer.from("not an image at all")));
    expect(refused.status).toBe(400);
    expect((await refused.json()).error.message).toMatch(/neither a JPEG nor a PNG/);
    expect(await db.captureSession.count({ where: { orgId } })).toBe(0);
  });
});

describe("the trainer protocol over HTTP", () => {
  it("wakes a long poll on one process with a frame posted to the other, serves frame bytes, and refuses bad frames", async () => {
    const { token, actor } = await operatorToken();
    const session = await createCaptureSession(db, { actor, input: createCaptureInput.parse({ name: "Two processes" }) });
    const base = `/api/captures/${session.id}`;

    const poll = send(portalA, token, "GET", `${base}/frames?after=0&wait=20`);
    await new Promise((r) => setTimeout(r, 500));
    const posted = await send(portalB, token, "POST", `${base}/frames?t=${Date.UTC(2026, 0, 1)}`, new Uint8Array(jpegs[30]), { "content-type": "image/jpeg" });
    expect(posted.status).toBe(201);
    expect(await posted.json()).toMatchObject({ seq: 1, sha256: sha(jpegs[30]), format: "jpeg", width: 64, height: 48, frameCount: 1 });
    const page = await (await poll).json();
    expect(page).toMatchObject({ status: "active", generation: 0, cursor: 1, lastSeq: 1 });
    expect(page.frames).toEqual([{ seq: 1, sha256: sha(jpegs[30]), bytes: jpegs[30].length, format: "jpeg", width: 64, height: 48, t: Date.UTC(2026, 0, 1), joints: null, url: `${base}/frames/1` }]);

    const image = await send(portalA, token, "GET", page.frames[0].url);
    expect(image.status).toBe(200);
    expect(image.headers.get("content-type")).toBe("image/jpeg");
    expect(image.headers.get("etag")).toBe(`"${sha(jpegs[30])}"`);
    expect(Buffer.from(await image.arrayBuffer()).equals(jpegs[30])).toBe(true);
    expect((await send(portalA, token, "GET", `${base}/frames/7`)).status).toBe(404);

    const notImage = await send(portalB, token, "POST", `${base}/frames`, new TextEncoder().encode("GIF89a pretending"), { "content-type": "image/jpeg" });
    expect(notImage.status).toBe(400);
    // Refused by its declared length, before a byte of the body is read.
    const tooBig = await declareOnly(portalB, token, `${base}/frames`, 2 * 1024 * 1024);
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.error.message).toMatch(/1 MiB CAPTURE_MAX_FRAME_BYTES/);
    const cut = await send(portalA, token, "POST", `${base}/frames`, new Uint8Array(jpegs[31].subarray(0, 400)), { "content-type": "image/jpeg" });
    expect(cut.status).toBe(400);

    // Past 30 frames a second the session answers 429 with a message. A sender is counted before
    // its body is read, so even frames that would be refused count: a burst of cheap bad ones
    // reaches the limit however slowly this machine stores real frames. The window starts with 29
    // counted, so the limit is passed even if this machine lets only a few through a second.
    await db.$executeRaw`
      INSERT INTO "RateLimit" ("key", "windowStart", "count") VALUES (${`capture:frames:${session.id}`}, (now() AT TIME ZONE 'UTC'), 29)
      ON CONFLICT ("key") DO UPDATE SET "windowStart" = EXCLUDED."windowStart", "count" = EXCLUDED."count"`;
    const burst = await Promise.all(Array.from({ length: 100 }, (_, i) => send(i % 2 ? portalA : portalB, token, "POST", `${base}/frames`, new Uint8Array([i, 1, 2, 3]), { "content-type": "image/png" })));
    const limited = burst.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect((await limited[0].json()).error).toEqual({ code: "RATE_LIMITED", message: expect.stringMatching(/^Too many frames for this capture session \(CAPTURE_FRAMES_PER_SECOND allows 30 a second\); try again in/) });
    expect(burst.every((r) => r.status === 400 || r.status === 429)).toBe(true);
    expect(await db.captureFrame.count({ where: { sessionId: session.id } })).toBe(1);
  });

  it("keeps the capture camera a frame or a snapshot states, and refuses a bad one before storing anything", async () => {
    const { token, actor } = await operatorToken();
    const session = await createCaptureSession(db, { actor, input: createCaptureInput.parse({ name: "Camera" }) });
    const base = `/api/captures/${session.id}`;
    const camera = { position: [0.2, -0.5, -1.0], rotation: [0, 0, 0, 1], fx: 520, fy: 520, cx: 32, cy: 24, width: 64, height: 48 };
    const frameWith = (value: string) => send(portalA, token, "POST", `${base}/frames?camera=${encodeURIComponent(value)}`, new Uint8Array(jpegs[5]), { "content-type": "image/jpeg" });
    expect((await frameWith(JSON.stringify(camera))).status).toBe(201);
    expect((await getCaptureSession(db, { actor, sessionId: session.id })).camera).toEqual(camera);

    const bad = await frameWith(JSON.stringify({ ...camera, fy: 0 }));
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.message).toMatch(/^The frame upload's query is not valid: camera\.fy fy is the focal length in pixels and must be positive/);
    expect((await frameWith("position=1,2,3")).status).toBe(400);
    expect(await db.captureFrame.count({ where: { sessionId: session.id } })).toBe(1);

    // A trainer that solved the camera states it with its snapshot.
    const lease = await (await send(portalB, token, "POST", `${base}/claim`, JSON.stringify({ trainer: "colmap-gsplat" }), { "content-type": "application/json" })).json();
    expect(lease.claimId).toEqual(expect.any(String));
    const solved = { ...camera, position: [1, 0, -2], rotation: [0, 0.7071068, 0, 0.7071068] };
    const push = (value: unknown) => send(portalB, token, "POST", `${base}/snapshots?claimId=${lease.claimId}&iteration=10&camera=${encodeURIComponent(JSON.stringify(value))}`, new Uint8Array(encodeSpz(randomCloud(50, 0, 3))));
    const refused = await push({ ...solved, rotation: [0, 0, 0, 0] });
    expect(refused.status).toBe(400);
    expect((await refused.json()).error.message).toMatch(/camera\.rotation camera rotation must be a quaternion/);
    expect(await db.captureSnapshot.count({ where: { sessionId: session.id } })).toBe(0);
    const pushed = await push(solved);
    expect(pushed.status, await pushed.clone().text()).toBe(201);
    const kept = (await getCaptureSession(db, { actor, sessionId: session.id })).camera!;
    expect(kept.position).toEqual([1, 0, -2]);
    kept.rotation.forEach((v, i) => expect(v).toBeCloseTo(solved.rotation[i]!, 6));
  });

  it("takes snapshots from the lease holder only, serves them with ETag and ranges, and shows nothing to another organisation's trainer", async () => {
    const { token, actor } = await operatorToken();
    const session = await createCaptureSession(db, { actor, input: createCaptureInput.parse({ name: "Snapshots" }) });
    const base = `/api/captures/${session.id}`;
    const lease = await (await send(portalA, token, "POST", `${base}/claim`, JSON.stringify({ trainer: "gsplat-a100" }), { "content-type": "application/json" })).json();
    expect(lease).toMatchObject({ sessionId: session.id, status: "active", generation: 0, silentAfterMs: 3000, claimId: expect.any(String) });
    const busy = await send(portalB, token, "POST", `${base}/claim`, JSON.stringify({ trainer: "another" }), { "content-type": "application/json" });
    expect(busy.status).toBe(409);
    expect((await busy.json()).error.message).toMatch(/Trainer "gsplat-a100" holds capture session "Snapshots"/);

    const hostile = await send(portalB, token, "POST", `${base}/snapshots?claimId=${lease.claimId}&iteration=1`, new TextEncoder().encode("ply\nformat ascii 1.0\nelement vertex 1\nend_header\n"));
    expect(hostile.status).toBe(400);
    expect((await hostile.json()).error.message).toMatch(/binary_little_endian/);

    const spz = encodeSpz(randomCloud(700, 3, 21));
    const pushed = await send(portalB, token, "POST", `${base}/snapshots?claimId=${lease.claimId}&iteration=2000`, new Uint8Array(spz), { "content-type": "application/octet-stream" });
    expect(pushed.status).toBe(201);
    const snapshot = await pushed.json();
    expect(snapshot).toMatchObject({ iteration: 2000, format: "spz", splats: 700, shDegree: 3, spzUrl: `${base}/snapshots/${snapshot.id}.spz` });
    const ply = writePly(randomCloud(300, 0, 22));
    expect((await send(portalA, token, "POST", `${base}/snapshots?claimId=${lease.claimId}&iteration=2500`, new Uint8Array(ply))).status).toBe(201);

    const list = await (await send(portalA, token, "GET", `${base}/snapshots`)).json();
    expect(list.map((s: { iteration: number }) => s.iteration)).toEqual([2500, 2000]);
    const whole = await send(portalA, token, "GET", snapshot.spzUrl);
    expect(whole.status).toBe(200);
    expect(Buffer.from(await whole.arrayBuffer()).equals(spz)).toBe(true);
    const etag = whole.headers.get("etag")!;
    expect((await send(portalB, token, "GET", snapshot.spzUrl, undefined, { "if-none-match": etag })).status).toBe(304);
    const part = await send(portalB, token, "GET", snapshot.spzUrl, undefined, { range: "bytes=0-99" });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(spz.subarray(0, 100))).toBe(true);
    const asPly = await send(portalA, token, "GET", snapshot.plyUrl);
    expect(parsePly(new Uint8Array(await asPly.arrayBuffer())).count).toBe(700);
    expect((await decodeSpz(spz)).count).toBe(700);

    const heartbeat = await send(portalB, token, "POST", `${base}/heartbeat`, JSON.stringify({ claimId: lease.claimId, iteration: 2600, gaussians: 300, progress: 0.5 }), { "content-type": "application/json" });
    expect(heartbeat.status).toBe(200);
    // Counts beyond what the session's columns hold are refused, naming the field; what was stored stays.
    const hugeBeat = await send(portalB, token, "POST", `${base}/heartbeat`, JSON.stringify({ claimId: lease.claimId, iteration: 3_000_000_000, gaussians: 300 }), { "content-type": "application/json" });
    expect(hugeBeat.status).toBe(400);
    expect((await hugeBeat.json()).error.message).toMatch(/iteration/);
    const hugePush = await send(portalB, token, "POST", `${base}/snapshots?claimId=${lease.claimId}&iteration=3000000000`, new Uint8Array(ply));
    expect(hugePush.status).toBe(400);
    expect((await hugePush.json()).error.message).toMatch(/iteration/);
    expect((await getCaptureSession(db, { actor, sessionId: session.id })).trainer).toMatchObject({ iteration: 2600, gaussians: 300 });
    expect(await (await send(portalA, token, "POST", `${base}/joints`, JSON.stringify({ joint_angles: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], t: 1_700_000_000_000 }), { "content-type": "application/json" })).json()).toEqual({ t: 1_700_000_000_000, angles: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6] });
    expect(await (await send(portalB, token, "GET", `${base}/joints`)).json()).toEqual({ t: 1_700_000_000_000, angles: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6] });

    // Another organisation's trainer, with a valid token of its own: nothing is there for it.
    const stranger = await operatorToken();
    const strangerCalls: [string, string, BodyInit | undefined, Record<string, string>][] = [
      ["POST", `${base}/claim`, JSON.stringify({ trainer: "intruder" }), { "content-type": "application/json" }],
      ["POST", `${base}/heartbeat`, JSON.stringify({ claimId: lease.claimId, iteration: 1, gaussians: 1 }), { "content-type": "application/json" }],
      ["POST", `${base}/snapshots?claimId=${lease.claimId}&iteration=3`, new Uint8Array(ply), {}],
      ["GET", `${base}/frames?after=0`, undefined, {}],
      ["GET", `${base}/snapshots`, undefined, {}],
      ["GET", snapshot.spzUrl, undefined, {}],
      ["POST", `${base}/frames`, new Uint8Array(jpegs[0]), { "content-type": "image/jpeg" }],
    ];
    for (const [method, path, body, headers] of strangerCalls) {
      const response = await send(portalA, stranger.token, method, path, body, headers);
      expect(response.status, `${method} ${path}`).toBe(404);
    }
    expect(await db.captureSnapshot.count({ where: { sessionId: session.id } })).toBe(2);
  });
});

// The reference gsplat trainer needs a CUDA GPU, which the tests do not have; its protocol half
// (the Portal class: every request it makes) runs here for real, with torch, gsplat and Pillow
// stubbed out so the script imports.
const harness = `
import hashlib, importlib.util, json, sys, types
for name in ["torch", "torch.nn", "torch.nn.functional", "gsplat", "PIL", "PIL.Image"]:
    sys.modules[name] = types.ModuleType(name)
sys.modules["torch"].nn = sys.modules["torch.nn"]
sys.modules["torch.nn"].functional = sys.modules["torch.nn.functional"]
sys.modules["PIL"].Image = sys.modules["PIL.Image"]
for attr in ["DefaultStrategy", "export_splats", "rasterization"]:
    setattr(sys.modules["gsplat"], attr, None)
script, base, session, token, ply_path = sys.argv[1:]
spec = importlib.util.spec_from_file_location("trainer", script)
trainer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(trainer)
portal = trainer.Portal(base, session, token)
lease = portal.claim("gsplat@test")
page = portal.frames(0, 10)
frame = page["frames"][0]
out = {"lease": lease, "page": page, "frame_ok": hashlib.sha256(portal.frame_bytes(frame)).hexdigest() == frame["sha256"]}
out["beat"] = portal.heartbeat(lease["claimId"], 10, 123, 0.1)
ply = open(ply_path, "rb").read()
out["pushed"] = portal.push(lease["claimId"], 500, lease["generation"], ply)
out["stale"] = portal.push(lease["claimId"], 501, lease["generation"] + 1, ply)
portal.release(lease["claimId"])
try:
    portal.heartbeat(lease["claimId"], 11, 123, 0.1)
    out["after_release"] = "accepted"
except trainer.LeaseLost as error:
    out["after_release"] = str(error)
print(json.dumps(out))
`;

describe("the reference gsplat trainer (docs/examples/capture_trainer_gsplat.py)", () => {
  it("claims, long-polls, fetches, heartbeats, pushes and releases as the protocol says", async () => {
    const { token, actor } = await operatorToken();
    const session = await createCaptureSession(db, { actor, input: createCaptureInput.parse({ name: "Reference trainer" }) });
    await send(portalB, token, "POST", `/api/captures/${session.id}/joints`, JSON.stringify({ joint_angles: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6] }), { "content-type": "application/json" });
    const dir = tempDir("gsplat-harness");
    const harnessPath = path.join(dir, "harness.py");
    const plyPath = path.join(dir, "snapshot.ply");
    fs.writeFileSync(harnessPath, harness);
    fs.writeFileSync(plyPath, writePly(randomCloud(250, 3, 77)));
    const run = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn("python3", [harnessPath, path.resolve("docs/examples/capture_trainer_gsplat.py"), portalA.url, session.id, token, plyPath], { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
    // The script's long poll is waiting when the frame arrives, through the other process.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await send(portalB, token, "POST", `/api/captures/${session.id}/frames`, new Uint8Array(jpegs[35]), { "content-type": "image/jpeg" })).status).toBe(201);
    const result = await run;
    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout);
    expect(out.lease).toMatchObject({ sessionId: session.id, generation: 0 });
    expect(out.page.frames).toHaveLength(1);
    expect(out.page.frames[0].joints.angles).toEqual([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
    expect(out.frame_ok).toBe(true);
    expect(out.beat).toMatchObject({ claimId: out.lease.claimId, status: "active" });
    expect(out.pushed).toMatchObject({ iteration: 500, format: "ply", splats: 250, shDegree: 3, trainerName: "gsplat@test" });
    expect(out.stale).toBeNull();
    expect(result.stderr).toMatch(/Snapshot at step 501 refused: 409: .*was reset/);
    expect(out.after_release).toMatch(/released; claim it again/);
  });
});
