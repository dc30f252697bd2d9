import type { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { recordAudit } from "../audit/audit.service";
import { Prisma } from "../generated/prisma/client";
import { sealSecret } from "../security/secret-box";
import { sealCredential } from "../ssh/sealed-target";
import { connectSsh } from "../ssh/ssh-client";
import { quoteShell } from "../ssh/shell-quote";
import { resolveWorkDir, sshTargetOfTrainingHost } from "./host";
import { slurmSettingsOf } from "./slurm-run";
import { probeTransactionsApi } from "./transactions-api";
import { targetFactsSchema, type CreateTargetInput, type TargetFacts, type TargetSummary } from "./training.schemas";

// Training targets: GPU hosts the team owns. Admins add them; "Test target" pins the host key
// on first contact and reads what the host has (GPUs, disk, Python, lerobot), saying plainly
// what is missing. The credential is sealed and never leaves this module's writes.

const ACTIVE = ["queued", "syncing", "launching", "running", "unreachable", "fetching"];

const summarySelect = {
  id: true, name: true, kind: true, host: true, port: true, username: true, authKind: true, pinnedHostKey: true,
  workDir: true, activate: true, commandTemplate: true, exportCommand: true, apiUrl: true, concurrency: true, isDefault: true, facts: true, lastTestAt: true,
} satisfies Prisma.TrainingTargetSelect;

export async function listTargets(db: Db, { orgId }: { orgId: string }): Promise<TargetSummary[]> {
  const rows = await db.trainingTarget.findMany({ where: { orgId }, orderBy: { name: "asc" }, select: summarySelect });
  const active = await db.trainingRun.groupBy({ by: ["targetId"], where: { orgId, status: { in: ACTIVE } }, _count: true });
  return rows.map((r) => ({ ...r, facts: r.facts ? targetFactsSchema.parse(r.facts) : null, activeRuns: active.find((a) => a.targetId === r.id)?._count ?? 0 }));
}

function nameTaken(error: unknown, name: string): never {
  if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") throw new AppError("CONFLICT", `A training target named ${name} already exists here; choose another name`);
  throw error;
}

export async function createTarget(db: Db, { actor, input }: { actor: OrgActor; input: Omit<CreateTargetInput, "api" | "exportCommand"> & { api?: CreateTargetInput["api"]; exportCommand?: string } }): Promise<{ id: string }> {
  const { credential, slurm, api, exportCommand, ...rest } = input;
  return db.$transaction(async (tx) => {
    if (rest.isDefault) await tx.trainingTarget.updateMany({ where: { orgId: actor.orgId }, data: { isDefault: false } });
    const target = await tx.trainingTarget
      .create({ data: { ...rest, exportCommand: exportCommand ?? "", slurm: slurm ?? Prisma.JsonNull, apiUrl: api?.url ?? null, apiToken: api?.token ? sealSecret(api.token) : null, ...sealCredential(credential), orgId: actor.orgId, createdById: actor.userId }, select: { id: true } })
      .catch((error) => nameTaken(error, input.name));
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "training.target.create", target: `training-target:${target.id}`, data: { name: input.name, host: input.host, port: input.port, username: input.username, kind: input.kind } });
    return target;
  });
}

export async function deleteTarget(db: Db, { actor, targetId }: { actor: OrgActor; targetId: string }): Promise<{ id: string }> {
  return db.$transaction(async (tx) => {
    const target = await tx.trainingTarget.findFirst({ where: { id: targetId, orgId: actor.orgId } });
    if (!target) throw new AppError("NOT_FOUND", "That training target does not exist in this organisation");
    if (await tx.trainingRun.count({ where: { targetId } })) throw new AppError("CONFLICT", `${target.name} has training runs; it is kept so their history stays readable`);
    await tx.trainingTarget.delete({ where: { id: targetId } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "training.target.delete", target: `training-target:${targetId}`, data: { name: target.name } });
    return { id: targetId };
  });
}

/** One command that reads everything "Test target" shows; each fact on a line of its own. */
const FACTS_SCRIPT = [
  "echo \"gpu:$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits 2>/dev/null | tr '\\n' ';')\"",
  "echo \"python:$(python3 --version 2>&1 | head -n1)\"",
  "echo \"lerobot:$(python3 -c 'import importlib.metadata as m; print(m.version(\"lerobot\"))' 2>/dev/null || (command -v lerobot-train >/dev/null && lerobot-train --version 2>/dev/null | head -n1))\"",
  "echo \"train:$(command -v lerobot-train 2>/dev/null)\"",
  "echo \"sbatch:$(timeout 10 sbatch --version 2>/dev/null | head -n1)\"",
].join("; ");

/** Slurm targets: whether the partition exists and the account is one the user may charge (when the cluster keeps accounts). */
export function slurmChecksScript({ partition, account }: { partition: string; account: string }): string {
  const q = quoteShell;
  return [
    "echo \"partitions:$(timeout 10 sinfo -h -o %P 2>/dev/null | tr -d '*' | sort -u | tr '\\n' ' ')\"",
    account ? `a=$(timeout 10 sacctmgr -nP show assoc where user="$(id -un)" account=${q(account)} format=account 2>/dev/null); echo "acctok:$?"; echo "acct:$(echo "$a" | head -n1)"` : "",
  ].filter(Boolean).join("; ");
}

export function slurmProblems(output: string, { partition, account }: { partition: string; account: string }): string[] {
  const line = (key: string) => output.split("\n").find((l) => l.startsWith(`${key}:`))?.slice(key.length + 1).trim() ?? "";
  const problems: string[] = [];
  const partitions = line("partitions").split(/\s+/).filter(Boolean);
  if (partition && partitions.length && !partitions.includes(partition)) problems.push(`Slurm has no partition ${partition}; it has ${partitions.join(", ")}`);
  if (account && line("acctok") === "0" && !line("acct")) problems.push(`Slurm does not let this user charge the account ${account}; ask the cluster's admins, or leave the account empty for your default`);
  return problems;
}

export function parseFacts(output: string, fingerprint: string, { kind, workDir }: { kind: string; workDir: string }): TargetFacts {
  const line = (key: string) => output.split("\n").find((l) => l.startsWith(`${key}:`))?.slice(key.length + 1).trim() ?? "";
  const gpus = line("gpu")
    .split(";")
    .map((g) => g.trim())
    .filter(Boolean)
    .map((g) => {
      const [name, memory, driver] = g.split(",").map((x) => x.trim());
      const memoryMiB = Number(memory);
      return { name: name ?? "GPU", memoryMiB: Number.isFinite(memoryMiB) ? memoryMiB : null, driver: driver ?? "" };
    });
  const disk = Number(line("disk"));
  const python = line("python") || null;
  const lerobot = line("lerobot") || null;
  const sbatch = line("sbatch") || null;
  const problems: string[] = [];
  if (!gpus.length && kind === "ssh") problems.push("No NVIDIA GPU was found (nvidia-smi is missing or lists none); training would run on the CPU, if at all");
  // A transactions-api target's host only holds the model directory; the service trains.
  const trainsHere = kind !== "transactions-api";
  if (trainsHere && (!python || !/^Python 3/.test(python))) problems.push("Python 3 was not found on the PATH; install it, or set the environment activation (e.g. source ~/lerobot/.venv/bin/activate)");
  if (trainsHere && !lerobot && !line("train")) problems.push("LeRobot is not installed here (no lerobot package, no lerobot-train on the PATH); install it or fix the environment activation");
  if (kind === "slurm" && !sbatch) problems.push("sbatch was not found: this host cannot submit Slurm jobs");
  if (Number.isFinite(disk) && disk < 20 * 1024 ** 3) problems.push(`Only ${(disk / 1024 ** 3).toFixed(1)} GiB free in ${workDir}; checkpoints and the dataset cache need room`);
  return { gpus, diskFreeBytes: Number.isFinite(disk) ? disk : null, python, lerobot, sbatch, problems, fingerprint };
}

/** Connects (pinning the host key on first contact), reads the host's facts and stores them. */
export async function testTarget(db: Db, { actor, targetId }: { actor: OrgActor; targetId: string }): Promise<TargetFacts> {
  const target = await db.trainingTarget.findFirst({ where: { id: targetId, orgId: actor.orgId } });
  if (!target) throw new AppError("NOT_FOUND", "That training target does not exist in this organisation");
  const session = await connectSsh(sshTargetOfTrainingHost(target));
  let facts: TargetFacts;
  try {
    const workDir = await resolveWorkDir(session, target.workDir);
    const activate = target.activate ? `${target.activate} >/dev/null 2>&1; ` : "";
    const slurm = target.kind === "slurm" ? slurmSettingsOf(target.slurm) : null;
    const script = `mkdir -p ${quoteShell(workDir)} && echo "disk:$(df -Pk ${quoteShell(workDir)} | awk 'NR==2 {print $4 * 1024}')"; ${activate}${FACTS_SCRIPT}${slurm ? `; ${slurmChecksScript(slurm)}` : ""}`;
    const result = await session.exec(script, { timeoutMs: 60_000 });
    facts = parseFacts(result.stdout, session.fingerprint, { kind: target.kind, workDir });
    if (slurm && facts.sbatch) facts.problems.push(...slurmProblems(result.stdout, slurm));
    if (target.kind === "transactions-api") {
      const apiProblem = await probeTransactionsApi(target);
      if (apiProblem) facts.problems.push(apiProblem);
    }
  } finally {
    session.close();
  }
  await db.$transaction(async (tx) => {
    await tx.trainingTarget.update({ where: { id: targetId }, data: { facts, lastTestAt: new Date(), pinnedHostKey: target.pinnedHostKey ?? facts.fingerprint } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "training.target.test", target: `training-target:${targetId}`, data: { fingerprint: facts.fingerprint, problems: facts.problems.length } });
  });
  return facts;
}

export type TargetOutput = z.infer<typeof targetFactsSchema>;
