import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createTestDatabase } from "../tests/setup/test-database";
import { createDb } from "../server/db";
import { createApiToken } from "../server/auth/tokens.service";
import { cancelJob } from "../server/jobs/jobs.service";
import { createOrgWithMember } from "../tests/helpers/factories";
import { buildAgent, rsyncOverSsh, runAgent, startTestPortal, startTestSshd, tempDir } from "../agent/test-helpers";
import { compare, percentile, printResults, type BenchResult } from "./lib/stats";

// `npx tsx bench/ingest.ts` — getting one episode off the robot's computer:
//   throughput: gantry-agent uploading a 2-camera, 30 fps, 30 s episode (1,800 PNG frames and its
//               data file) to the portal's edge routes on loopback — hashing, tus upload, the
//               portal's sha256 check and unpacking, registration — against rsync over OpenSSH
//               to the same machine (what the earlier clients did), interleaved, fresh targets;
//   recording finished → playable: the agent's upload plus the worker encoding the episode into
//               the dataset, against the earlier system's ≈ 36 s (6 s rsync + 30 s encode).
// Frames are 640x480 (BENCH_FRAME_SIZE) testsrc2 with sensor-like noise, ~0.5 MB each as a
// camera's PNGs are; 30 distinct frames per camera repeat through the 900 (neither path can
// tell: every file is sent whole). The portal's routes are served by server/edge/test-portal.ts
// (the route handlers without the rest of Next).

const CAMERAS = ["front", "wrist"];
const FPS = 30;
const SECONDS = 30;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const FRAME_SIZE = process.env.BENCH_FRAME_SIZE ?? "640x480";
const REFERENCE_PLAYABLE_S = 36;

function makeRecording(root: string): number {
  const frames = FPS * SECONDS;
  for (const [i, camera] of CAMERAS.entries()) {
    const dir = path.join(root, "images", camera, "episode-000000");
    fs.mkdirSync(dir, { recursive: true });
    const unique = path.join(root, `.unique-${camera}`);
    fs.mkdirSync(unique, { recursive: true });
    execFileSync("ffmpeg", ["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", `testsrc2=size=${FRAME_SIZE}:rate=${FPS}`, "-vf", `hue=h=${i * 90},noise=alls=12:allf=t`, "-frames:v", String(FPS), "-start_number", "0", path.join(unique, "f-%02d.png")]);
    for (let f = 0; f < frames; f++) fs.copyFileSync(path.join(unique, `f-${String(f % FPS).padStart(2, "0")}.png`), path.join(dir, `frame-${String(f).padStart(6, "0")}.png`));
    fs.rmSync(unique, { recursive: true });
  }
  fs.mkdirSync(path.join(root, "data"), { recursive: true });
  const rows = Array.from({ length: frames }, (_, i) => JSON.stringify({ frame_index: i, timestamp: i / FPS, "observation.state": Array.from({ length: 6 }, (_, j) => Math.sin(i / 20 + j)), action: Array.from({ length: 6 }, (_, j) => Math.sin(i / 20 + j + 0.05)) }));
  fs.writeFileSync(path.join(root, "data", "episode-000000.jsonl"), rows.join("\n") + "\n");
  return Number(execFileSync("du", ["-sb", root]).toString().split("\t")[0]);
}

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

async function main() {
  const database = await createTestDatabase("bench_ingest");
  const home = tempDir("bench-ingest");
  const uploadDir = path.join(home, "edge-uploads");
  const settings = { DATABASE_URL: database.url, GANTRY_HOME: home, EDGE_UPLOAD_DIR: uploadDir, DATASETS_DIR: path.join(home, "datasets"), EDGE_MIN_FREE_DISK_BYTES: "0", AUTH_SECRET: crypto.randomBytes(32).toString("base64url"), ENCRYPTION_KEY: crypto.randomBytes(32).toString("base64") };
  Object.assign(process.env, settings);
  const db = createDb(database.url, 2);
  let worker: ChildProcess | null = null;
  const portal = await startTestPortal(settings);
  const sshd = await startTestSshd();
  const recording = tempDir("bench-recording");
  const agentHome = tempDir("bench-agent");
  try {
    buildAgent();
    const { actor } = await createOrgWithMember(db, "operator");
    const { token } = await createApiToken(db, { actor, input: { name: "bench", scopes: ["write"] } });
    const login = await runAgent(["login", "--portal", portal.url, "--token", token], { home: agentHome });
    if (login.code !== 0) throw new Error(login.stderr);

    console.error(`Recording a ${CAMERAS.length}-camera, ${FPS} fps, ${SECONDS} s episode at ${FRAME_SIZE}...`);
    const bytes = makeRecording(recording);
    console.error(`${CAMERAS.length * FPS * SECONDS} frames, ${(bytes / 1e6).toFixed(0)} MB`);

    const ours: number[] = [];
    const reference: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      // rsync first in odd runs, ours first in even ones: neither always gets the warmer cache.
      const order = run % 2 ? ["rsync", "ours"] : ["ours", "rsync"];
      for (const which of order) {
        const repoId = `bench/${which}-${run}-${crypto.randomBytes(3).toString("hex")}`;
        // Each run starts with nothing waiting to be written back: the previous run's (or the
        // recording's) gigabyte of dirty pages would otherwise slow whichever runs next.
        execFileSync("sync");
        const start = process.hrtime.bigint();
        if (which === "ours") {
          const result = await runAgent(["upload", recording, "--dataset", repoId], { home: agentHome });
          if (result.code !== 0) throw new Error(`The agent failed: ${result.stderr}`);
          ours.push(seconds(start));
        } else {
          rsyncOverSsh(sshd, recording, path.join(home, "rsync-target", ...repoId.split("/")));
          reference.push(seconds(start));
        }
        console.error(`run ${run + 1} ${which}: ${(which === "ours" ? ours : reference).at(-1)!.toFixed(2)} s`);
        fs.rmSync(path.join(home, "rsync-target"), { recursive: true, force: true });
      }
    }
    // The timing runs registered episodes too; cancel their encodings so the worker below has only the one to do.
    for (const job of await db.job.findMany({ where: { orgId: actor.orgId, status: { in: ["queued", "running"] } }, select: { id: true } })) await cancelJob(db, { actor, jobId: job.id });

    const mb = bytes / 1e6;
    const oursMbps = mb / percentile(ours, 50);
    const rsyncMbps = mb / percentile(reference, 50);
    const results: BenchResult[] = [compare("upload throughput (median)", oursMbps, rsyncMbps, "MB/s", "agent upload ≥ 1.0× rsync over OpenSSH")];

    // Recording finished → playable, with a worker encoding what arrives.
    worker = spawn(path.resolve("node_modules/.bin/tsx"), ["worker/index.ts"], { env: { ...process.env, ...settings }, stdio: ["ignore", "ignore", "inherit"] });
    await sleep(3000);
    const repoId = `bench/playable-${crypto.randomBytes(3).toString("hex")}`;
    execFileSync("sync");
    const start = process.hrtime.bigint();
    const upload = await runAgent(["upload", recording, "--dataset", repoId], { home: agentHome });
    if (upload.code !== 0) throw new Error(`The agent failed: ${upload.stderr}`);
    const uploaded = seconds(start);
    let playable = NaN;
    for (const deadline = Date.now() + 600_000; Date.now() < deadline; await sleep(200)) {
      const episode = await db.episode.findFirst({ where: { dataset: { repoId } }, select: { status: true, error: true } });
      if (episode?.status === "ready") {
        playable = seconds(start);
        break;
      }
      if (episode?.status === "failed") throw new Error(`Encoding failed: ${episode.error}`);
    }
    console.error(`playable after ${playable.toFixed(1)} s (upload ${uploaded.toFixed(1)} s, encoding ${(playable - uploaded).toFixed(1)} s)`);
    results.push(compare("recording finished → playable", playable, REFERENCE_PLAYABLE_S, "s", "below the earlier ≈ 36 s (ratio < 1)"));
    printResults("ingest", results);
  } finally {
    worker?.kill("SIGTERM");
    sshd.stop();
    await portal.stop();
    await db.$disconnect();
    for (const dir of [home, recording, agentHome]) fs.rmSync(dir, { recursive: true, force: true });
    await database.drop();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
