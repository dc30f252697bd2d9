import type { JobEvent } from "../generated/prisma/client";
import type { JobEventDto } from "./jobs.schemas";
import type { EventNotification } from "./catalog";

export function toJobEventDto(row: JobEvent): JobEventDto {
  return {
    id: row.id.toString(),
    jobId: row.jobId,
    seq: row.seq,
    orgSeq: row.orgSeq,
    at: row.at,
    level: row.level,
    step: row.step,
    progress: row.progress,
    status: row.status,
    message: row.message,
  };
}

/** The same event from the notification that carried it: the same fields in the same order, so its frame is the same bytes. */
export function notifiedJobEventDto(n: Pick<EventNotification, "id" | "jobId">, event: NonNullable<EventNotification["event"]>): JobEventDto {
  return { id: n.id, jobId: n.jobId, ...event, at: new Date(event.at) };
}
