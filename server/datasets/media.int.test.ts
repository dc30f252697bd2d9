import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GET as videoRoute } from "../../app/api/datasets/[id]/episodes/[episodeId]/video/[camera]/route";
import { testDb } from "../../tests/helpers/db";
import { writeRawEpisode } from "../../tests/helpers/edge-episodes";
import { createOrgWithMember } from "../../tests/helpers/factories";
import type { OrgActor } from "../auth/roles";
import { sessionCookie } from "../../tests/helpers/session";
import { env } from "../env";
import { silentProgress } from "../jobs/progress";
import { listEncoders, mediaTools, probeVideo } from "../media/ffmpeg";
import { commitEpisode } from "./builder.service";
import { rawEpisodeDir } from "./datasets.schemas";
import { encodeCamera, encodeEpisode } from "./encode.service";
import { blobStore } from "../storage/blobs";

const run = promisify(execFile);
const db = testDb();
let actor: OrgActor;
let tmp: string;

beforeAll(async () => {
  actor = (await createOrgWithMember(db, "viewer")).actor;
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-media-"));
});
afterAll(async () => {
  await db.$disconnect();
  await fs.rm(tmp, { recursive: true, force: true });
});

describe("media", () => {
  it("encodes AV1 with LeRobot's settings when this ffmpeg has libsvtav1", async (ctx) => {
    const tools = mediaTools(env());
    // Reported as skipped, not passed, on an ffmpeg without it (the job then says so and encodes H.264).
    if (!(await listEncoders(tools.ffmpeg)).has("libsvtav1")) ctx.skip();
    const dir = path.join(tmp, "av1");
    await fs.mkdir(dir);
    await run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "testsrc=size=128x96:rate=30", "-frames:v", "20", "-start_number", "0", path.join(dir, "frame-%d.png")]);
    const frames = Array.from({ length: 20 }, (_, i) => path.join(dir, `frame-${i}.png`));
    const probe = await encodeCamera({ tools, camera: "top", frames, fps: 30, output: path.join(tmp, "top.mp4"), settings: { codec: "av1", preset: "veryfast", crf: 23 } });
    expect(probe).toMatchObject({ codec: "av1", pixFmt: "yuv420p", frames: 20, width: 128, height: 96 });
    // g=2: every other frame is a key frame.
    const { stdout } = await run("ffprobe", ["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=flags", "-of", "csv=p=0", path.join(tmp, "top.mp4")]);
    expect(stdout.trim().split("\n").filter((f) => f.startsWith("K")).length).toBeGreaterThanOrEqual(10);
  });

  it("serves an episode's video with Range, to members of its organisation only", async () => {
    const repoId = `range-${Math.random().toString(36).slice(2, 8)}`;
    const dataset = await db.dataset.create({ data: { orgId: actor.orgId, repoId } });
    await writeRawEpisode(rawEpisodeDir(env(), actor.orgId, repoId), { number: 0, frames: 30, cameras: ["front"] });
    const e = await db.episode.create({ data: { orgId: actor.orgId, datasetId: dataset.id, number: 0, mode: "edge" } });
    await encodeEpisode(db, { episodeId: e.id, settings: env(), progress: silentProgress, blobs: blobStore(), isLastAttempt: true, commit: (d, episodeId) => commitEpisode(d, { episodeId, blobs: blobStore(), settings: env() }) });
    const cookie = await sessionCookie(db, actor.userId);
    const call = (headers: Record<string, string>, camera = "front") =>
      videoRoute(new Request(`http://localhost/api/datasets/${dataset.id}/episodes/${e.id}/video/${camera}`, { headers: { cookie, ...headers } }), { params: Promise.resolve({ id: dataset.id, episodeId: e.id, camera }) });
    const whole = await call({});
    expect(whole.status).toBe(200);
    const bytes = Buffer.from(await whole.arrayBuffer());
    expect(whole.headers.get("accept-ranges")).toBe("bytes");
    expect(Number(whole.headers.get("content-length"))).toBe(bytes.length);
    const part = await call({ range: "bytes=100-199" });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 100-199/${bytes.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(100, 200))).toBe(true);
    const tail = await call({ range: "bytes=-50" });
    expect(Buffer.from(await tail.arrayBuffer()).equals(bytes.subarray(bytes.length - 50))).toBe(true);
    expect((await call({ range: `bytes=${bytes.length + 10}-` })).status).toBe(416);
    expect((await call({}, "wrist")).status).toBe(404);
    const file = path.join(tmp, "served.mp4");
    await fs.writeFile(file, bytes);
    expect((await probeVideo(mediaTools(env()), file)).frames).toBe(30);
    const other = (await createOrgWithMember(db, "owner")).owner;
    const otherCookie = await sessionCookie(db, other.userId);
    expect((await call({ cookie: otherCookie })).status).toBe(404);
  });
});
