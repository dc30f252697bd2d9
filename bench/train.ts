import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { blobStore } from "../server/storage/blobs";

// `npx tsx bench/train.ts` — training on a GPU host over SSH, against the same sshd:
//   sync:    a 20-episode LeRobot v3.0 dataset (BENCH_EPISODES; 2 cameras × 5 s at 320x240,
//            encoded and built by the real pipeline) to a fresh host — our content-addressed sync
//            (hashing the build, the cache, the hard-link tree) vs `rsync -a` over OpenSSH, one
//            cipher for both (aes128-gcm@openssh.com), interleaved, medians of BENCH_RUNS; then
//            a 21st episode appended (a new build) and each tool's re-sync of it; then the same
//            build again, unchanged;
//   start:   a run started (startRun, what the Start button calls) → its first log line in the
//            run's log stream (what the run page follows), with a worker running and the
//            dataset already on the host, over BENCH_START_RUNS runs;
//   log:     a line written by the trainer on the host (the stand-in stamps each line with the
//            time it wrote it) → delivered by the run's log stream to a subscriber;
//   cancel:  cancelRun → no process of the run's process group left on the host, with the
//            trainer ignoring TERM (so KILL after TRAINING_CANCEL_GRACE_S) and honouring it.
// The host is an OpenSSH sshd on 127.0.0.1 with the stand-in lerobot-train on its PATH
// (tests/helpers/sshd-rig.ts, tests/helpers/training.ts). Every command over SSH starts the
// login shell, so the sync is measured twice: with the machine's own ~/.bashrc (context), then
// with a login shell that skips it, as are the goal rows and everything after. Start, log and
// cancel have no tool to run beside them: their reference column is the figure the issue
// states, or the bound.

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-bench-train-"));
process.env.GANTRY_HOME ??= path.join(tmp, "home");
process.env.DATASETS_DIR = path.join(tmp, "datasets");
process.env.EDGE_UPLOAD_DIR = path.join(tmp, "edge-uploads");
process.env.TRAINING_CANCEL_GRACE_S ??= "3";
// The GPU host is an sshd on this machine, which the outbound policy refuses by default.
process.env.OUTBOUND_ALLOW_LOOPBACK = "true";

const run = promisify(execFile);
const CIPHER = "aes128-gcm@openssh.com";
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const START_RUNS = Number(process.env.BENCH_START_RUNS ?? 5);
const EPISODES = Number(process.env.BENCH_EPISODES ?? 20);
const CAMERAS = ["front", "wrist"];
const FPS = 30;
const SECONDS = 5;
const SIZE = "320x240";
/** Periodic lines per timed run, and the trainer's pace between them. */
const LOG_LINES = 24;
const LOG_PACE_MS = 250;
const SKYPILOT_EXEC_S = 7.7;
const DSTACK_POLL_S = 5;

const { createTestDatabase } = await import("../tests/setup/test-database");
const database = await createTestDatabase("bench_train");
process.env.DATABASE_URL = database.url;

const { env } = await import("../server/env");
const { createDb } = await import("../server/db");
const { connectSsh, redialling } = await import("../server/ssh/ssh-client");
const { silentProgress } = await import("../server/jobs/progress");
const { rawEpisodeDir, datasetDir } = await import("../server/datasets/datasets.schemas");
const { encodeEpisode } = await import("../server/datasets/encode.service");
const { commitEpisode } = await import("../server/datasets/builder.service");
const { listDatasetFiles, syncDataset } = await import("../server/training/dataset-sync");
const { startRun, cancelRun } = await import("../server/training/runs.service");
const { openRunLogStream } = await import("../server/training/log-stream");
const { RealtimeHub } = await import("../server/jobs/realtime");
const { startWorker } = await import("../worker/worker");
const { startSshdRig } = await import("../tests/helpers/sshd-rig");
const { addTestedTarget, makeGpuHost, trainerControl } = await import("../tests/helpers/training");
const { createOrgWithMember } = await import("../tests/helpers/factories");
const { episodeRows } = await import("../tests/helpers/edge-episodes");
const { compare, percentile, printResults } = await import("./lib/stats");
type BenchResult = import("./lib/stats").BenchResult;

const settings = env();
const db = createDb(database.url, 6);
const rig = await startSshdRig(1, { names: ["gpu-host"] });
const host = rig.devices[0];
makeGpuHost(host);
let worker: Awaited<ReturnType<typeof startWorker>> | null = null;
let hub: InstanceType<typeof RealtimeHub> | null = null;

const now = () => performance.now();
const median = (values: number[]) => percentile(values, 50);
const timed = async <T>(fn: () => Promise<T>): Promise<{ s: number; value: T }> => {
  const t = now();
  const value = await fn();
  return { s: (now() - t) / 1000, value };
};
const log = (message: string) => console.error(`[train] ${message}`);
const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

/** A raw episode as an agent uploads it: PNG frames per camera (moving test pattern, sensor-like noise) and the data file. */
async function writeRecording(root: string, number: number): Promise<void> {
  for (const [c, camera] of CAMERAS.entries()) {
    const dir = path.join(root, "images", camera, `episode-${number}`);
    fs.mkdirSync(dir, { recursive: true });
    await run("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", `testsrc2=size=${SIZE}:rate=${FPS}`, "-vf", `hue=h=${(number * 37 + c * 90) % 360},noise=alls=6:allf=t`, "-frames:v", String(FPS * SECONDS), "-start_number", "0", path.join(dir, "frame-%d.png")]);
  }
  fs.mkdirSync(path.join(root, "data"), { recursive: true });
  fs.writeFileSync(path.join(root, "data", `episode-${number}.jsonl`), episodeRows(FPS * SECONDS, FPS, number).map((r) => JSON.stringify(r)).join("\n") + "\n");
}

const results: BenchResult[] = [];
try {
  const { actor } = await createOrgWithMember(db, "admin");
  const repoId = "lab/so101-pick-cube";

  // The dataset, through the real pipeline: encoded episodes committed one by one, each commit a new build.
  const dataset = await db.dataset.create({ data: { orgId: actor.orgId, repoId } });
  const raw = rawEpisodeDir(settings, actor.orgId, repoId);
  const addEpisode = async (number: number) => {
    await writeRecording(raw, number);
    const episode = await db.episode.create({ data: { orgId: actor.orgId, datasetId: dataset.id, number, mode: "edge", task: "Pick the cube and place it in the bin", cameras: CAMERAS } });
    await encodeEpisode(db, { episodeId: episode.id, settings, progress: silentProgress, blobs: blobStore(), isLastAttempt: true, commit: (d, episodeId, signal) => commitEpisode(d, { episodeId, blobs: blobStore(), settings, signal }) });
  };
  /** The current build, copied aside (the next commit removes it) with its build id. */
  const snapshot = async (name: string) => {
    const { buildId } = await db.dataset.findUniqueOrThrow({ where: { id: dataset.id } });
    const dir = path.join(tmp, name);
    fs.cpSync(fs.realpathSync(datasetDir(settings, actor.orgId, repoId)), dir, { recursive: true, preserveTimestamps: true });
    return { dir, buildId: buildId! };
  };
  const building = await timed(async () => {
    for (let i = 0; i < EPISODES; i++) await addEpisode(i);
  });
  const before = await snapshot(`build-${EPISODES}`);
  await addEpisode(EPISODES);
  const after = await snapshot(`build-${EPISODES + 1}`);
  const beforeFiles = await listDatasetFiles(before.dir);
  const datasetBytes = beforeFiles.reduce((n, f) => n + f.bytes, 0);
  log(`built ${EPISODES} + 1 episodes in ${building.s.toFixed(1)} s: ${beforeFiles.length} files, ${mb(datasetBytes)} MB (${beforeFiles.map((f) => `${f.rel} ${mb(f.bytes)}`).join(", ")})`);

  // Ours as the run's job calls it (hashing the build included), and rsync over OpenSSH.
  const target = { name: host.name, host: host.host, port: host.sshdPort, username: host.user, privateKey: rig.privateKey, pinnedFingerprint: host.fingerprint(), algorithms: { cipher: [CIPHER] as never }, purpose: "training-host" as const };
  const oursSync = async (workDir: string, build: { dir: string; buildId: string }) => {
    const session = redialling(() => connectSsh(target));
    try {
      const files = await listDatasetFiles(build.dir);
      return await syncDataset({ connect: session.connect, workDir, orgId: actor.orgId, repoId, buildId: build.buildId, files, progress: silentProgress });
    } finally {
      session.close();
    }
  };
  const ssh = ["ssh", "-i", rig.privateKeyPath, "-p", String(host.sshdPort), "-c", CIPHER, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"].join(" ");
  const rsync = async (from: string, to: string) => {
    const { stdout } = await run("rsync", ["-a", "--stats", "-e", ssh, `${from}/`, `${host.user}@${host.host}:${to}/`]);
    return Number(/Total bytes sent: ([\d,]+)/.exec(stdout)?.[1].replace(/,/g, "") ?? NaN);
  };
  const hostDir = (name: string) => {
    const dir = path.join(host.dir, "bench", name);
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    return dir;
  };
  /** The sync figures, ours and rsync interleaved, into fresh folders on the host each run. */
  const measureSync = async (round: string) => {
    // Page cache, sshd's first start of sftp-server and rsync: one unmeasured sync of each.
    await oursSync(hostDir(`${round}-warm-ours`), before);
    await rsync(before.dir, hostDir(`${round}-warm-rsync`));
    const t = { command: [] as number[], ssh: [] as number[], ours: [] as number[], rsync: [] as number[], oursAppend: [] as number[], rsyncAppend: [] as number[], oursSame: [] as number[], rsyncSame: [] as number[], oursSent: [] as number[], rsyncSent: [] as number[] };
    for (let i = 0; i < RUNS; i++) {
      // What one command costs on this host: the handshake and the login shell's start-up.
      t.command.push((await timed(async () => {
        const session = await connectSsh(target);
        try {
          await session.exec("true");
        } finally {
          session.close();
        }
      })).s);
      t.ssh.push((await timed(() => run("ssh", [...ssh.split(" ").slice(1), `${host.user}@${host.host}`, "true"]))).s);
      const workDir = hostDir(`${round}-ours-${i}`);
      const dest = hostDir(`${round}-rsync-${i}`);
      t.ours.push((await timed(() => oursSync(workDir, before))).s);
      t.rsync.push((await timed(() => rsync(before.dir, dest))).s);
      const appended = await timed(() => oursSync(workDir, after));
      t.oursAppend.push(appended.s);
      t.oursSent.push(appended.value.sentBytes);
      const rsyncAppended = await timed(() => rsync(after.dir, dest));
      t.rsyncAppend.push(rsyncAppended.s);
      t.rsyncSent.push(rsyncAppended.value);
      t.oursSame.push((await timed(() => oursSync(workDir, after))).s);
      t.rsyncSame.push((await timed(() => rsync(after.dir, dest))).s);
      log(`${round} sync run ${i + 1}: one command ${t.command[i].toFixed(2)} s; fresh ours ${t.ours[i].toFixed(2)} s, rsync ${t.rsync[i].toFixed(2)} s; append ours ${t.oursAppend[i].toFixed(2)} s, rsync ${t.rsyncAppend[i].toFixed(2)} s; unchanged ours ${t.oursSame[i].toFixed(2)} s, rsync ${t.rsyncSame[i].toFixed(2)} s`);
    }
    return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)])) as Record<keyof typeof t, number>;
  };
  const label = `${EPISODES} episodes, ${beforeFiles.length} files, ${mb(datasetBytes)} MB`;

  // First with the machine's own login shell: where ~/.bashrc sets up pyenv or conda, as on many
  // GPU hosts, every command over SSH waits for it.
  const slow = await measureSync("login-rc");
  // Then with a login shell that skips ~/.bashrc (bash reads it for SSH commands only at shell
  // level 1), so the figures that follow are the tools' and not this machine's dotfiles.
  const config = path.join(host.dir, "sshd_config");
  fs.writeFileSync(config, fs.readFileSync(config, "utf8").replace(/^SetEnv (.*)$/m, "SetEnv $1 SHLVL=1"));
  await host.down();
  await host.up();
  const quick = await measureSync("quick-shell");

  results.push(compare("one command over SSH (connect, login shell, `true`) vs OpenSSH ssh", quick.command, quick.ssh, "s", "context: what each command costs on this host"));
  results.push(compare(`dataset sync to a fresh host vs rsync -a (${label}, ${CIPHER})`, datasetBytes / 1e6 / quick.ours, datasetBytes / 1e6 / quick.rsync, "MB/s", "≥ 1.0× (rsync time ÷ ours)"));
  results.push(compare(`re-sync after appending episode ${EPISODES + 1} vs rsync's re-sync`, quick.oursAppend, quick.rsyncAppend, "s", "≤ 1.2× rsync's time"));
  results.push(compare("re-sync after appending: MB sent (ours: whole changed files; rsync: its delta)", quick.oursSent / 1e6, quick.rsyncSent / 1e6, "MB", "context: bytes over the wire"));
  results.push(compare("re-sync of an unchanged build vs rsync's", quick.oursSame, quick.rsyncSame, "s", "≤ 1 s (ours)"));
  const rc = "login shell reading this machine's ~/.bashrc";
  results.push(compare(`one command over SSH, ${rc}, vs OpenSSH ssh`, slow.command, slow.ssh, "s", "context: what each command costs with it"));
  results.push(compare(`dataset sync to a fresh host vs rsync -a, ${rc}`, datasetBytes / 1e6 / slow.ours, datasetBytes / 1e6 / slow.rsync, "MB/s", "context: goal ≥ 1.0×"));
  results.push(compare(`re-sync after appending vs rsync's, ${rc}`, slow.oursAppend, slow.rsyncAppend, "s", "context: goal ≤ 1.2×"));
  results.push(compare(`re-sync of an unchanged build vs rsync's, ${rc}`, slow.oursSame, slow.rsyncSame, "s", "context: goal ≤ 1 s"));

  // The worker, a tested target on the same host (its own work folder), and a first run that puts the dataset there.
  worker = await startWorker({ url: database.url, concurrency: 2, log: () => {} });
  const { id: targetId } = await addTestedTarget(db, actor, rig, { ...host, port: host.sshdPort }, { name: "gpu-host", workDir: path.join(host.dir, "work") });
  const control = (name: string, value: string | null) => trainerControl(host, name, value);
  const runRow = (runId: string) => db.trainingRun.findUniqueOrThrow({ where: { id: runId } });
  const settled = async (runId: string, timeoutMs = 120_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await runRow(runId);
      if (["succeeded", "failed", "cancelled", "lost"].includes(r.status)) return r;
      if (Date.now() > deadline) throw new Error(`run ${runId} did not end within ${timeoutMs / 1000} s (${r.status})`);
      await sleep(100);
    }
  };
  /** Follows the run's log as the browser does (its event stream), until the stream ends with the run; calls `onChunk` with each piece and when it arrived. */
  hub = new RealtimeHub({ url: database.url, db, jobEvents: false });
  const liveHub = hub;
  const followLog = async (runId: string, onChunk: (text: string, seenAt: number) => void) => {
    for await (const piece of await openRunLogStream({ db, hub: liveHub, orgId: actor.orgId, runId, after: -1, signal: new AbortController().signal })) onChunk(piece.text, Date.now());
  };
  const input = (steps: number) => ({ datasetId: dataset.id, targetId, policyType: "act" as const, steps, saveFreq: steps, logFreq: 10 });

  control("train-pace-ms", "20");
  const first = await startRun(db, { actor, input: input(20) });
  const firstRun = await settled(first.runId);
  if (firstRun.status !== "succeeded") throw new Error(`The first run ${firstRun.status}: ${firstRun.error}`);

  // Start → first line, and line written → readable, over START_RUNS runs on the warm host.
  control("train-stamp", "1");
  control("train-pace-ms", String(LOG_PACE_MS));
  const startLatency: number[] = [];
  const lineLatency: number[] = [];
  for (let i = 0; i < START_RUNS; i++) {
    const t0 = Date.now();
    const { runId } = await startRun(db, { actor, input: input(LOG_LINES * 10) });
    let firstSeen: number | null = null;
    await followLog(runId, (text, seenAt) => {
      firstSeen ??= seenAt;
      for (const m of text.matchAll(/ t:(\d{13})$/gm)) lineLatency.push((seenAt - Number(m[1])) / 1000);
    });
    const r = await runRow(runId);
    if (r.status !== "succeeded") throw new Error(`Timed run ${i + 1} ${r.status}: ${r.error}`);
    startLatency.push((firstSeen! - t0) / 1000);
    log(`run ${i + 1}: first line after ${startLatency[i].toFixed(2)} s; line latency so far p50 ${percentile(lineLatency, 50).toFixed(2)} s, p95 ${percentile(lineLatency, 95).toFixed(2)} s (${lineLatency.length} lines)`);
  }
  results.push(compare(`Start → first log line in the run's log stream, warm host, p50 of ${START_RUNS} (reference: SkyPilot exec on an existing cluster, as the issue states it)`, median(startLatency), SKYPILOT_EXEC_S, "s", "≤ 3 s"));
  results.push(compare(`log line written on the host → delivered to a log stream subscriber, p95 of ${lineLatency.length} lines (reference: dstack polls every 5 s)`, percentile(lineLatency, 95), DSTACK_POLL_S, "s", "≤ 1 s"));
  results.push(compare("log line written on the host → delivered to a log stream subscriber, p50", percentile(lineLatency, 50), DSTACK_POLL_S, "s", "context: dstack polls every 5 s"));

  // Cancel → nothing of the run left on the host.
  const grace = settings.TRAINING_CANCEL_GRACE_S;
  // A process of the group that is still running: one that has exited but waits for its parent
  // to reap it (a zombie; here PID 1 reaps orphans only every second or two) is not counted.
  const groupAlive = (pgid: number) =>
    fs.readdirSync("/proc").some((name) => {
      if (!/^\d+$/.test(name)) return false;
      try {
        const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
        const [state, , group] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return Number(group) === pgid && state !== "Z";
      } catch {
        return false;
      }
    });
  const cancelOnce = async (): Promise<number> => {
    const { runId } = await startRun(db, { actor, input: input(1_000_000) });
    while ((await db.trainingLogChunk.count({ where: { runId } })) === 0) await sleep(20);
    const r = await runRow(runId);
    const pid = Number(fs.readFileSync(path.join(r.runDir!, `attempt-${r.attempt}`, "pid"), "utf8"));
    const t0 = now();
    await cancelRun(db, { actor, runId });
    const deadline = Date.now() + (grace + 60) * 1000;
    while (groupAlive(pid)) {
      if (Date.now() > deadline) throw new Error(`The run's processes (group ${pid}) were still there ${grace + 60} s after cancel`);
      await sleep(20);
    }
    const s = (now() - t0) / 1000;
    const ended = await settled(runId);
    if (ended.status !== "cancelled") throw new Error(`A cancelled run ended ${ended.status}: ${ended.error}`);
    if (ended.error) log(`cancelled with: ${ended.error}`);
    return s;
  };
  control("train-stamp", null);
  control("train-pace-ms", "200");
  const killed: number[] = [];
  const stopped: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    control("train-ignore-term", "1");
    killed.push(await cancelOnce());
    control("train-ignore-term", null);
    stopped.push(await cancelOnce());
    log(`cancel run ${i + 1}: TERM ignored ${killed[i].toFixed(2)} s, TERM honoured ${stopped[i].toFixed(2)} s`);
  }
  results.push(compare(`cancel → no process of the run left, TERM ignored (KILL after the ${grace} s grace), worst of ${RUNS} (reference: the bound)`, Math.max(...killed), grace + 5, "s", `≤ grace + 5 s`));
  results.push(compare(`cancel → no process of the run left, TERM honoured, worst of ${RUNS} (reference: the bound)`, Math.max(...stopped), grace + 5, "s", `≤ grace + 5 s`));
} finally {
  await worker?.stop().catch((e: Error) => log(`stopping the worker: ${e.message}`));
  await hub?.stop().catch(() => {});
  await db.$disconnect().catch(() => {});
  await database.drop().catch((e: Error) => log(`dropping the database: ${e.message}`));
  await rig.stop().catch((e: Error) => log(`stopping sshd: ${e.message}`));
  fs.rmSync(tmp, { recursive: true, force: true });
}
printResults("train", results);
process.exit(0);
