import type { JobEvent } from "../generated/prisma/client";
import type { JobEventDto } from "./jobs.schemas";

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
