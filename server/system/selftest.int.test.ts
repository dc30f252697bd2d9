import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { createModelServer } from "../../serve/server";
import { createDb, type Db } from "../db";
import type { EventLevel } from "../jobs/job-events.sql";
import type { ProgressReporter } from "../jobs/progress";
import { selftestJob } from "../jobs/catalog";
import { runJob } from "../jobs/run";
import { CancellationRegistry } from "../jobs/cancellation";
import { getJob, listJobEvents } from "../jobs/jobs.service";
import { InferenceEngine } from "../serving/inference.service";
import { recordHeartbeat } from "./heartbeat.service";
import { runSystemChecks, SYSTEM_CHECK_NAMES, type CheckSettings } from "./selftest-checks";
import { runSelftest } from "./selftest-run.service";
import { startSelftest } from "./selftest.service";

// The self-test against the real things: Postgres, a worker's heartbeat, the system's ffmpeg,
// onnxruntime in the validation child, a running model server, the disk, and ssh2. A database
// of its own, so no other test's workers or unfinished jobs change what the worker check sees.

let database: TestDatabase;
let db: Db;
let model: ReturnType<typeof createModelServer>;
let home: string;
let settings: CheckSettings;

function recorder(): ProgressReporter & { lines: { kind: "step" | "log" | "set"; message: string; level?: EventLevel }[] } {
  const lines: { kind: "step" | "log" | "set"; message: string; level?: EventLevel }[] = [];
  return {
    lines,
    step: async (name) => void lines.push({ kind: "step", message: name }),
    set: async (_fraction, message) => void lines.push({ kind: "set", message: message ?? "" }),
    log: async (message, level = "info") => void lines.push({ kind: "log", message, level }),
  };
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

beforeAll(async () => {
  database = await createTestDatabase("selftest");
  db = createDb(database.url, 3);
  model = createModelServer({ db, engine: new InferenceEngine({ readModel: async () => Buffer.alloc(0), defaultTimeoutMs: 30_000 }), pollMs: 60_000 });
  const address = await model.listen(0, "127.0.0.1");
  await model.syncNow();
  home = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-selftest-test-"));
  settings = {
    EDGE_ENCODE_CODEC: "h264",
    SERVE_HOST: "127.0.0.1",
    SERVE_PORT: address.port,
    BLOB_DIR: path.join(home, "blobs"),
    DATASETS_DIR: path.join(home, "datasets"),
    EDGE_UPLOAD_DIR: path.join(home, "edge-uploads"),
    EDGE_MIN_FREE_DISK_BYTES: 1024,
    WORKER_STALE_AFTER_MS: 30_000,
  };
});
afterAll(async () => {
  await model?.close();
  await db?.$disconnect();
  await database?.drop();
  fs.rmSync(home, { recursive: true, force: true });
});
beforeEach(async () => {
  await db.$executeRaw`DELETE FROM "WorkerHeartbeat"`;
});

describe("self-test", () => {
  it("checks each thing Gantry needs by name and passes them all on a machine that has them", async () => {
    await recordHeartbeat(db, ["selftest-worker"]);
    const progress = recorder();
    const results = await runSystemChecks({ db, settings, progress, signal: new AbortController().signal });

    expect(SYSTEM_CHECK_NAMES).toEqual(["Database", "Worker", "ffmpeg and encoders", "onnxruntime", "Model server", "Disk space", "SSH client"]);
    expect(results.map((r) => r.name)).toEqual(SYSTEM_CHECK_NAMES);
    for (const r of results) expect(r, `${r.name}: ${r.detail}`).toMatchObject({ ok: true });
    // One step per check, then one pass line per check, naming it.
    expect(progress.lines.filter((l) => l.kind === "step").map((l) => l.message)).toEqual([
      "Checking the database",
      "Checking the worker",
      "Checking ffmpeg and its encoders",
      "Checking onnxruntime",
      "Checking the model server",
      "Checking disk space",
      "Checking the SSH client",
    ]);
    const logged = progress.lines.filter((l) => l.kind === "log");
    expect(logged.map((l) => l.message.split(":")[0])).toEqual(SYSTEM_CHECK_NAMES);
    for (const l of logged) expect(l.message).toMatch(/^[^:]+: pass — \S/);

    const detail = Object.fromEntries(results.map((r) => [r.name, r.detail]));
    expect(detail.Database).toMatch(/^PostgreSQL \d+(\.\d+)? answered in \d+ ms/);
    expect(detail.Worker).toBe("1 worker reporting in; no job is stuck");
    expect(detail["ffmpeg and encoders"]).toMatch(/encoded 5 test frames with libx264 and ffprobe read them back/);
    expect(detail.onnxruntime).toMatch(/^onnxruntime-node \d+\.\d+\.\d+ loaded a test model and ran it/);
    expect(detail["Model server"]).toBe(`ready at http://127.0.0.1:${settings.SERVE_PORT}`);
    expect(detail["Disk space"]).toMatch(/GB free for blobs, datasets, edge uploads; all writable/);
    expect(detail["SSH client"]).toMatch(/^ssh2 \d+\.\d+\.\d+ connected to a throwaway SSH server on loopback \(\S+, \S+\), signed in with an ed25519 key and ran a command/);
    // The disk check leaves nothing behind in Gantry's folders.
    expect(fs.readdirSync(settings.BLOB_DIR)).toEqual([]);
  }, 120_000);

  it("fails each check that cannot pass with what is wrong and what to do, and runs the rest", async () => {
    const broken: CheckSettings = { ...settings, FFMPEG_PATH: path.join(home, "no-ffmpeg"), SERVE_PORT: await closedPort(), EDGE_MIN_FREE_DISK_BYTES: 1e15 };
    const progress = recorder();
    const results = await runSystemChecks({ db, settings: broken, progress, signal: new AbortController().signal });
    const byName = Object.fromEntries(results.map((r) => [r.name, r]));

    expect(results.filter((r) => !r.ok).map((r) => r.name)).toEqual(["Worker", "ffmpeg and encoders", "Model server", "Disk space"]);
    expect(byName.Worker.detail).toBe("No worker has reported in recently — start one with npm start (or npm start -- --only worker)");
    expect(byName["ffmpeg and encoders"].detail).toBe(`There is no ffmpeg Gantry can run at ${broken.FFMPEG_PATH} — install ffmpeg (it brings ffprobe), or point FFMPEG_PATH at one`);
    expect(byName["Model server"].detail).toMatch(new RegExp(`^Nothing answered at http://127\\.0\\.0\\.1:${broken.SERVE_PORT}/v2/health/ready \\(ECONNREFUSED\\) — npm start runs the model server`));
    expect(byName["Disk space"].detail).toMatch(/free for blobs, .* less than the 1000\.0 TB below which edge uploads are refused \(EDGE_MIN_FREE_DISK_BYTES\)/);
    const failLines = progress.lines.filter((l) => l.kind === "log" && l.level === "error").map((l) => l.message);
    expect(failLines.map((m) => m.split(": fail — ")[0])).toEqual(["Worker", "ffmpeg and encoders", "Model server", "Disk space"]);
  }, 120_000);

  it("runs as the job a person starts with no input, and fails naming the checks that failed", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const run = async (checkSettings: CheckSettings) => {
      const { jobId } = await startSelftest(db, { actor, input: {} });
      await runJob({ db, def: selftestJob, jobId, attempt: 1, cancellations: new CancellationRegistry(), handler: (payload, ctx) => runSelftest(payload, { ...ctx, settings: checkSettings }) });
      return { job: await getJob(db, { orgId: actor.orgId, jobId }), log: (await listJobEvents(db, { orgId: actor.orgId, jobId })).map((e) => e.message) };
    };

    await recordHeartbeat(db, ["selftest-worker"]);
    const passed = await run(settings);
    expect(passed.job, `the job's log:\n${passed.log.join("\n")}`).toMatchObject({ status: "succeeded", progress: 1 });
    for (const name of SYSTEM_CHECK_NAMES) expect(passed.log.some((m) => m.startsWith(`${name}: pass — `)), name).toBe(true);
    expect(passed.log).toContain("All 7 checks passed");

    const failed = await run({ ...settings, SERVE_PORT: await closedPort() });
    expect(failed.job.status).toBe("failed");
    expect(failed.job.error).toBe("1 of 7 checks failed: Model server — the log says what each found and what to do");
    expect(failed.log.filter((m) => m.includes(": fail — ")).map((m) => m.split(":")[0])).toEqual(["Model server"]);
  }, 120_000);
});
