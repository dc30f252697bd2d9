import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Db } from "../../server/db";
import { datasetDir, datasetStoreDir } from "../../server/datasets/datasets.schemas";
import type { OrgActor } from "../../server/auth/roles";
import { createTarget, testTarget } from "../../server/training/targets.service";
import type { RigDevice, SshdRig } from "./sshd-rig";

// A simulated GPU host (an sshd of the rig with the stand-in lerobot-train and nvidia-smi on
// its PATH) and a dataset with a build to train on.

const FIXTURE = path.resolve("tests/fixtures/so101-record-v3");

export function makeGpuHost(device: RigDevice): void {
  const bin = path.join(device.dir, "bin");
  fs.copyFileSync(path.resolve("tests/helpers/lerobot-train-stand-in.mjs"), path.join(bin, "lerobot-train"));
  fs.chmodSync(path.join(bin, "lerobot-train"), 0o755);
  fs.copyFileSync(path.resolve("tests/helpers/nvidia-smi-stand-in.sh"), path.join(bin, "nvidia-smi"));
  fs.chmodSync(path.join(bin, "nvidia-smi"), 0o755);
}

/** A control file of the stand-in trainer (see its header); null removes it. */
export function trainerControl(device: RigDevice, name: string, value: string | null): void {
  const p = path.join(device.dir, "control", name);
  if (value === null) fs.rmSync(p, { force: true });
  else fs.writeFileSync(p, `${value}\n`);
}

export async function addTestedTarget(db: Db, actor: OrgActor, rig: SshdRig, device: RigDevice, extra: { name?: string; workDir?: string; activate?: string; exportCommand?: string; concurrency?: number } = {}) {
  const { id } = await createTarget(db, {
    actor,
    input: {
      name: extra.name ?? `gpu-${crypto.randomBytes(3).toString("hex")}`,
      kind: "ssh",
      host: device.host,
      port: device.port,
      username: device.user,
      credential: { kind: "key", privateKey: rig.privateKey },
      workDir: extra.workDir ?? path.join(device.dir, "work"),
      activate: extra.activate ?? "",
      commandTemplate: "lerobot-train --dataset.repo_id={repo_id} --dataset.root={dataset} --policy.type={policy} --output_dir={output} --job_name={name} --policy.device=cuda --policy.push_to_hub=false --steps={steps} --save_freq={save_freq} --log_freq={log_freq}",
      exportCommand: extra.exportCommand ?? "",
      concurrency: extra.concurrency ?? 1,
      isDefault: true,
      slurm: null,
    },
  });
  const facts = await testTarget(db, { actor, targetId: id });
  return { id, facts };
}

/** A dataset whose current build is the SO-101 recording kept in the repository. */
export async function datasetWithBuild(db: Db, settings: { DATASETS_DIR: string }, orgId: string, repoId = `lab/train-${crypto.randomBytes(3).toString("hex")}`) {
  const buildId = `b-${crypto.randomBytes(4).toString("hex")}`;
  const dataset = await db.dataset.create({ data: { orgId, repoId, buildId, fps: 30, robotType: "so101_follower" } });
  const build = path.join(datasetStoreDir(settings, dataset.id), "builds", buildId);
  fs.mkdirSync(path.dirname(build), { recursive: true });
  fs.cpSync(FIXTURE, build, { recursive: true });
  const link = datasetDir(settings, orgId, repoId);
  fs.mkdirSync(path.dirname(link), { recursive: true });
  fs.symlinkSync(build, link);
  return { ...dataset, build };
}

/** Whether any process of a run (its wrapper, carrying the run marker) still lives on this machine's simulated host. */
export function isTrainerAlive(runId: string): boolean {
  try {
    return execFileSync("pgrep", ["-f", `gantry-run-${runId}`]).toString().trim().length > 0;
  } catch {
    return false;
  }
}
