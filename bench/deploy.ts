import { execFile } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

// `npx tsx bench/deploy.ts` — getting a policy onto devices, against the same sshd, the same
// file and the same cipher (aes128-gcm@openssh.com) on both sides:
//   upload:  one 200 MB file (BENCH_UPLOAD_MB) by our SFTP upload (pipelined, resumable) vs
//            OpenSSH `sftp` (put) and `scp` — throughput, best of BENCH_RUNS;
//   rollout: a 100 MB model (BENCH_ROLLOUT_MB) to 8 loopback devices through the whole path —
//            job per device on its own queue, disk check, upload, sha256sum on the device,
//            atomic swap, restart, health check — vs a sequential `scp` loop to the same 8.
// Every device is an OpenSSH sshd on 127.0.0.1 (tests/helpers/sshd-rig.ts).

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-bench-deploy-"));
process.env.GANTRY_HOME ??= path.join(tmp, "home");
process.env.WORKER_HEARTBEAT_MS ??= "1000";
// The devices are sshd processes on this machine, which the outbound policy refuses by default.
process.env.OUTBOUND_ALLOW_LOOPBACK ??= "true";

const { startSshdRig } = await import("../tests/helpers/sshd-rig");
const { connectSsh } = await import("../server/ssh/ssh-client");
const { uploadResumable } = await import("../server/ssh/sftp-upload");
const { busyCpuSeconds, compare, printResults } = await import("./lib/stats");

const run = promisify(execFile);
const CIPHER = "aes128-gcm@openssh.com";
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const UPLOAD_MB = Number(process.env.BENCH_UPLOAD_MB ?? 200);
const ROLLOUT_MB = Number(process.env.BENCH_ROLLOUT_MB ?? 100);
const DEVICES = 8;

function writeRandom(file: string, mb: number): void {
  const fd = fs.openSync(file, "w");
  for (let i = 0; i < mb; i++) fs.writeSync(fd, crypto.randomBytes(1024 * 1024));
  fs.closeSync(fd);
}

const rig = await startSshdRig(DEVICES);
const opensshArgs = (port: number) => ["-i", rig.privateKeyPath, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-c", CIPHER, "-P", String(port)];

try {
  const results = [];
  const d = rig.devices[0];
  const bigFile = path.join(tmp, "upload.bin");
  writeRandom(bigFile, UPLOAD_MB);
  const remote = (name: string) => path.join(d.modelDir, name);
  const timed = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return (performance.now() - t) / 1000;
  };
  // Each tool's best run, and the CPU time the whole machine spent during it (both ends of
  // the transfer run here: client, sshd, sftp-server).
  const cpuOfBest = new Map<string, number>();
  const best = async (fn: (i: number) => Promise<unknown>, name = "") => {
    let s = Infinity;
    for (let i = 0; i < RUNS; i++) {
      const cpu = busyCpuSeconds();
      const t = await timed(() => fn(i));
      if (t < s) {
        s = t;
        cpuOfBest.set(name, busyCpuSeconds() - cpu);
      }
    }
    return s;
  };

  // Interleaved would be fairer on a busy machine; each tool's best run is what is compared.
  const target = { name: d.name, host: d.host, port: d.sshdPort, username: d.user, privateKey: rig.privateKey, pinnedFingerprint: d.fingerprint(), algorithms: { cipher: [CIPHER] as never } };
  const ours = await best(async (i) => {
    const session = await connectSsh(target);
    try {
      await uploadResumable({ connect: async () => session, localPath: bigFile, remotePath: remote(`ours-${i}.bin`) });
    } finally {
      session.close();
    }
  }, "ours");
  const sftp = await best(async (i) => {
    const batch = path.join(tmp, `batch-${i}`);
    fs.writeFileSync(batch, `put ${bigFile} ${remote(`sftp-${i}.bin`)}\n`);
    await run("sftp", [...opensshArgs(d.sshdPort), "-b", batch, `${d.user}@${d.host}`]);
  }, "sftp");
  const scp = await best((i) => run("scp", [...opensshArgs(d.sshdPort), "-q", bigFile, `${d.user}@${d.host}:${remote(`scp-${i}.bin`)}`]));
  for (const f of fs.readdirSync(d.modelDir)) if (f.endsWith(".bin")) fs.rmSync(path.join(d.modelDir, f));
  const mbps = (s: number) => UPLOAD_MB / s;
  results.push(compare(`SFTP upload ${UPLOAD_MB} MB vs sftp`, mbps(ours), mbps(sftp), "MB/s", "≥ 1.5×"));
  results.push(compare(`SFTP upload ${UPLOAD_MB} MB vs scp`, mbps(ours), mbps(scp), "MB/s", "≥ 1.5×"));
  // Context: what a transfer costs the machine, both ends together. 1.5× sftp's throughput at
  // sftp's cost would need (1.5 × rate × cost) CPU seconds per second — more than the cores here.
  const cores = os.availableParallelism();
  const perHundredMb = (name: string) => (cpuOfBest.get(name)! / UPLOAD_MB) * 100;
  results.push(compare(`SFTP upload: CPU seconds per 100 MB, both ends (${cores} cores)`, perHundredMb("ours"), perHundredMb("sftp"), "CPU s", `context: 1.5× sftp needs ${((1.5 * mbps(sftp) * perHundredMb("sftp")) / 100).toFixed(2)} cores at sftp's cost`));

  // The rollout, through a real worker and database.
  const { createTestDatabase } = await import("../tests/setup/test-database");
  const { createDb } = await import("../server/db");
  const { startWorker } = await import("../worker/worker");
  const { createOrgWithMember } = await import("../tests/helpers/factories");
  const { blobStore } = await import("../server/storage/blobs");
  const { createDeviceInput } = await import("../server/fleet/fleet.schemas");
  const { createDevice, testConnection } = await import("../server/fleet/devices.service");
  const { createRollout, getRollout } = await import("../server/fleet/rollouts.service");
  const database = await createTestDatabase("bench-deploy");
  process.env.DATABASE_URL = database.url;
  const db = createDb(database.url, 12);
  const worker = await startWorker({ url: database.url, concurrency: DEVICES, log: () => {} });
  try {
    const { actor } = await createOrgWithMember(db, "admin");
    const modelFile = path.join(tmp, "model.onnx");
    writeRandom(modelFile, ROLLOUT_MB);
    const stored = await blobStore().put(fs.createReadStream(modelFile));
    const model = await db.model.create({ data: { orgId: actor.orgId, name: "bench" } });
    const version = await db.modelVersion.create({ data: { orgId: actor.orgId, modelId: model.id, number: 1, status: "ready", source: { kind: "upload" }, sha256: stored.sha256, bytes: BigInt(stored.bytes) } });
    const ids: string[] = [];
    for (const dev of rig.devices) {
      const input = createDeviceInput.parse({ name: dev.name, host: dev.host, port: dev.sshdPort, username: dev.user, credential: { kind: "key", privateKey: rig.privateKey }, modelDir: dev.modelDir });
      const { id } = await createDevice(db, { actor, input });
      await testConnection(db, { actor, orgId: actor.orgId, deviceId: id });
      ids.push(id);
    }
    const rollout = await timed(async () => {
      const { id } = await createRollout(db, { actor, input: { modelVersionId: version.id, selector: { deviceIds: ids }, strategy: { kind: "all" } } });
      for (;;) {
        const r = await getRollout(db, { orgId: actor.orgId, deploymentId: id });
        if (["succeeded", "failed", "aborted"].includes(r.status)) {
          if (r.status !== "succeeded") throw new Error(`The benchmark rollout ${r.status}: ${r.error}`);
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    });
    const loopCpu = busyCpuSeconds();
    const loop = await timed(async () => {
      for (const dev of rig.devices) await run("scp", [...opensshArgs(dev.sshdPort), "-q", modelFile, `${dev.user}@${dev.host}:${path.join(dev.modelDir, "scp-loop.onnx")}`]);
    });
    const loopCpuSeconds = busyCpuSeconds() - loopCpu;
    results.push(compare(`rollout ${ROLLOUT_MB} MB to ${DEVICES} devices vs sequential scp`, rollout, loop, "s", "≤ 0.4×"));
    // Context: the loop's own CPU time spread over every core — the least those bytes can take
    // through these sshds here at OpenSSH's cost, however they are scheduled.
    results.push(compare(`rollout floor: the scp loop's CPU time ÷ ${os.availableParallelism()} cores`, loopCpuSeconds / os.availableParallelism(), loop, "s", "context: the least any rollout at OpenSSH's cost could take here"));
  } finally {
    await worker.stop();
    await db.$disconnect();
    await database.drop();
  }
  printResults("deploy", results);
} finally {
  await rig.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
}
