import { execFile } from "node:child_process";
import fsSync from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSshdRig, type SshdRig } from "../../tests/helpers/sshd-rig";
import { env } from "../env";
import { buildLeRobotDataset, type BuildResult } from "../datasets/lerobot/build";
import { silentProgress } from "../jobs/progress";
import { mediaTools, probeVideo } from "../media/ffmpeg";
import { connectSsh, redialling } from "../ssh/ssh-client";
import { listDatasetFiles, syncDataset } from "./dataset-sync";

// Appending an episode to a dataset re-sends that episode's files, not the dataset: a build that
// only appends leaves every earlier file as it was (the builder), and the host's cache, keyed by
// file hash, already holds those (the sync). Measured on the wire, through the rig's relay.

const run = promisify(execFile);
let rig: SshdRig;
let tmp: string;

beforeAll(async () => {
  rig = await startSshdRig(1, { names: ["gpu-sync"] });
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-sync-"));
}, 60_000);
afterAll(async () => {
  await rig?.stop();
  await fs.rm(tmp, { recursive: true, force: true });
});

/** Bytes of every file under a folder. */
function fsSize(dir: string): number {
  let n = 0;
  for (const entry of fsSync.readdirSync(dir, { withFileTypes: true, recursive: true })) if (entry.isFile()) n += fsSync.statSync(path.join(entry.parentPath, entry.name)).size;
  return n;
}

describe("dataset sync after an append", () => {
  it("resumes a sync cut off half-way; after an append sends the new episode's files and the metadata; the host sees the whole dataset each time", { timeout: 120_000 }, async () => {
    const tools = mediaTools(env());
    const episodes = [];
    for (const i of [0, 1, 2, 3]) {
      const dir = path.join(tmp, `episode-${i}`);
      await fs.mkdir(dir);
      // Noise does not compress: each episode's video is a size worth measuring.
      await run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", `nullsrc=size=160x120:rate=10,geq=random(1)*255:128:128`, "-frames:v", "30", "-c:v", "libx264", "-pix_fmt", "yuv420p", path.join(dir, "front.mp4")]);
      const rows = Array.from({ length: 30 }, (_, f) => ({ frame_index: f, timestamp: f / 10, "observation.state": [f + i, -f], action: [f, i], extra: {} }));
      episodes.push({ task: "Pick the cube", dir, stored: { fps: 10, rows, videos: { front: await probeVideo(tools, path.join(dir, "front.mp4")) } } });
    }
    const common = { fps: 10, robotType: "so101_follower", names: { action: null, state: null }, cameras: ["front"], missingCameras: [], tools };
    const b1 = path.join(tmp, "b1");
    const b2 = path.join(tmp, "b2");
    const first: BuildResult = await buildLeRobotDataset({ ...common, outDir: b1, episodes: episodes.slice(0, 3) });
    await buildLeRobotDataset({ ...common, outDir: b2, episodes, previous: { dir: b1, manifest: first.manifest, layout: first.layout } });

    const device = rig.devices[0];
    const target = { name: device.name, host: device.host, port: device.port, username: device.user, privateKey: rig.privateKey, pinnedFingerprint: device.fingerprint(), purpose: "training-host" as const };
    const workDir = path.join(device.dir, "gantry");
    const sync = async (build: string, buildId: string) => {
      // As a run's job does: a lost connection is dialled again, once for all who ask.
      const session = redialling(() => connectSsh(target));
      try {
        return await syncDataset({ connect: session.connect, workDir, orgId: "org", repoId: "lab/pick", buildId, files: await listDatasetFiles(build), progress: silentProgress });
      } finally {
        session.close();
      }
    };

    // The first sync goes on from what an earlier try left: half the video as a part in the host's
    // cache (where a connection cut mid-file leaves it), and it is cut off half-way itself. A file
    // resumed from a part is checked on the host before the folder is made.
    const video = (await listDatasetFiles(b1)).find((f) => f.rel.endsWith(".mp4"))!;
    await fs.mkdir(path.join(workDir, "cache"), { recursive: true });
    await fs.writeFile(path.join(workDir, "cache", `${video.sha256}.part`), (await fs.readFile(video.abs)).subarray(0, Math.floor(video.bytes / 2)));
    device.cutAfterBytes(Math.floor((fsSize(b1) - video.bytes / 2) / 2));
    const first_ = await sync(b1, "b1");
    expect(first_.layout).toBe("command");
    const remoteB1 = (await listDatasetFiles(first_.remoteRoot)).filter((f) => f.rel !== ".gantry-complete");
    expect(remoteB1.map((f) => [f.rel, f.sha256])).toEqual((await listDatasetFiles(b1)).map((f) => [f.rel, f.sha256]));
    const before = device.bytesIn();
    const second = await sync(b2, "b2");
    const onWire = device.bytesIn() - before;
    // Sent whole in one go: laid out over SFTP, with no command on the host.
    expect(second.layout).toBe("sftp");

    // What changed: the new episode's data and video files, and the three metadata files that count episodes.
    const had = new Set((await listDatasetFiles(b1)).map((f) => f.sha256));
    const changed = (await listDatasetFiles(b2)).filter((f) => !had.has(f.sha256));
    expect(changed.map((f) => f.rel).sort()).toEqual(["data/chunk-000/file-001.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/info.json", "meta/stats.json", "videos/observation.images.front/chunk-000/file-001.mp4"]);
    const changedBytes = changed.reduce((n, f) => n + f.bytes, 0);
    expect(second.sentFiles).toBe(changed.length);
    expect(second.sentBytes).toBe(changedBytes);
    // On the wire: those bytes and the protocol's own, far less than the dataset.
    expect(onWire).toBeLessThan(changedBytes + 64 * 1024);
    expect(second.totalBytes).toBeGreaterThan(3 * changedBytes);

    // The host has the whole four-episode dataset, each file as built.
    const local = await listDatasetFiles(b2);
    const remote = (await listDatasetFiles(second.remoteRoot)).filter((f) => f.rel !== ".gantry-complete");
    expect(remote.map((f) => [f.rel, f.sha256])).toEqual(local.map((f) => [f.rel, f.sha256]));
  });
});
