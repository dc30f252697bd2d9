import type { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { recordAudit } from "../audit/audit.service";
import { Prisma, type Job, type User } from "../generated/prisma/client";
import { CANCEL_CHANNEL, findJobDef } from "./catalog";
import { addQueueEntry, removeQueueEntry } from "./enqueue";
import { appendJobEvent } from "./progress";
import { toJobEventDto } from "./jobs.queries";
import { describeJobSubjects } from "./job-subjects";
import type { JobDto, JobEventDto, listJobsInput } from "./jobs.schemas";

function toJobDto(job: Job & { createdBy: Pick<User, "name"> | null }, subject: string | null = null): JobDto {
  return {
    id: job.id,
    kind: job.kind,
    title: findJobDef(job.kind)?.title ?? job.kind,
    subject,
    status: job.status,
    progress: job.progress,
    step: job.step,
    attempts: job.attempts,
    maxAttempts: job.maxAttempts,
    error: job.error,
    createdBy: job.createdBy?.name ?? null,
    createdAt: job.createdAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
    cancelRequested: job.cancelRequestedAt !== null,
  };
}

const withCreator = { createdBy: { select: { name: true } } } as const;

export async function listJobs(db: Db, { orgId, input }: { orgId: string; input: z.infer<typeof listJobsInput> }): Promise<{ items: JobDto[]; nextCursor: string | null }> {
  const rows = await db.job.findMany({
    where: { orgId, ...(input.status ? { status: input.status } : {}), ...(input.kind ? { kind: input.kind } : {}) },
    orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    take: input.limit + 1,
    ...(input.cursor ? { cursor: { id: input.cursor }, skip: 1 } : {}),
    include: withCreator,
  });
  const page = rows.slice(0, input.limit);
  const subjects = await describeJobSubjects(db, page);
  const items = page.map((job) => toJobDto(job, subjects.get(job.id) ?? null));
  return { items, nextCursor: rows.length > input.limit ? items[items.length - 1].id : null };
}

async function findJob(db: Db, orgId: string, jobId: string) {
  const job = await db.job.findFirst({ where: { id: jobId, orgId }, include: withCreator });
  if (!job) throw new AppError("NOT_FOUND", "No such job in this organisation");
  return job;
}

export async function getJob(db: Db, { orgId, jobId }: { orgId: string; jobId: string }): Promise<JobDto> {
  const job = await findJob(db, orgId, jobId);
  return toJobDto(job, (await describeJobSubjects(db, [job])).get(job.id) ?? null);
}

export async function listJobEvents(db: Db, { orgId, jobId, afterSeq = 0 }: { orgId: string; jobId: string; afterSeq?: number }): Promise<JobEventDto[]> {
  await findJob(db, orgId, jobId);
  const rows = await db.jobEvent.findMany({ where: { jobId, seq: { gt: afterSeq } }, orderBy: { seq: "asc" }, take: 2000 });
  return rows.map(toJobEventDto);
}

/** Queued jobs stop before they start; running ones are aborted through their AbortSignal. */
export async function cancelJob(db: Db, { actor, jobId }: { actor: OrgActor; jobId: string }): Promise<JobDto> {
  await db.$transaction(async (tx) => {
    const [job] = await tx.$queryRaw<Job[]>`SELECT * FROM "Job" WHERE id = ${jobId}::uuid AND "orgId" = ${actor.orgId}::uuid FOR UPDATE`;
    if (!job) throw new AppError("NOT_FOUND", "No such job in this organisation");
    if (job.status !== "queued" && job.status !== "running") throw new AppError("CONFLICT", `This job has already ${job.status === "succeeded" ? "finished" : job.status}; there is nothing to cancel`);
    if (job.status === "queued") {
      await tx.job.update({ where: { id: jobId }, data: { cancelRequestedAt: new Date(), finishedAt: new Date() } });
      await removeQueueEntry(tx, jobId);
      await appendJobEvent(tx, { jobId, orgId: actor.orgId, message: `Cancelled by ${actor.label}`, status: "cancelled", level: "warn" });
    } else {
      await tx.job.update({ where: { id: jobId }, data: { cancelRequestedAt: new Date() } });
      await appendJobEvent(tx, { jobId, orgId: actor.orgId, message: `Cancel requested by ${actor.label}`, level: "warn" });
      await tx.$executeRaw`SELECT pg_notify(${CANCEL_CHANNEL}, ${JSON.stringify({ jobId })})`;
    }
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "job.cancel", target: jobId, data: { kind: job.kind } });
  });
  return getJob(db, { orgId: actor.orgId, jobId });
}

/** Runs a failed or cancelled job again from the start, keeping its history. */
export async function retryJob(db: Db, { actor, jobId }: { actor: OrgActor; jobId: string }): Promise<JobDto> {
  await db.$transaction(async (tx) => {
    const [job] = await tx.$queryRaw<Job[]>`SELECT * FROM "Job" WHERE id = ${jobId}::uuid AND "orgId" = ${actor.orgId}::uuid FOR UPDATE`;
    if (!job) throw new AppError("NOT_FOUND", "No such job in this organisation");
    if (job.status !== "failed" && job.status !== "cancelled") throw new AppError("CONFLICT", "Only a failed or cancelled job can be retried");
    const def = findJobDef(job.kind);
    if (!def) throw new AppError("BAD_REQUEST", `Jobs of kind ${job.kind} can no longer be run by this version of Gantry`);
    await tx.job.update({
      where: { id: jobId },
      data: { progress: 0, step: null, error: null, attempts: 0, cancelRequestedAt: null, startedAt: null, finishedAt: null, result: Prisma.DbNull },
    });
    await addQueueEntry(tx, def, jobId, {});
    await appendJobEvent(tx, { jobId, orgId: actor.orgId, message: `Retried by ${actor.label}`, status: "queued", progress: 0, reopens: true });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "job.retry", target: jobId, data: { kind: job.kind } });
  });
  return getJob(db, { orgId: actor.orgId, jobId });
}

export async function countJobsByStatus(db: Db, orgId: string): Promise<Record<JobDto["status"], number>> {
  const groups = await db.job.groupBy({ by: ["status"], where: { orgId }, _count: { _all: true } });
  const counts = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (const g of groups) counts[g.status] = g._count._all;
  return counts;
}
