import type { z } from "zod";
import type { Tx } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import type { Prisma } from "../generated/prisma/client";
import type { captureSnapshotSchema } from "./captures.schemas";

/** NOTIFY channel: a session's id when it has new frames, stops, starts, is reset or goes. */
export const CAPTURE_CHANNEL = "gantry_capture";

export type SessionRow = Prisma.CaptureSessionGetPayload<{ include: { robot: { select: { name: true } } } }>;
export const withRobot = { robot: { select: { name: true } } } as const;

/** The session, which must be the actor's organisation's (another's is not found, as if it did not exist). */
export async function findSession(db: Tx, actor: OrgActor, sessionId: string): Promise<SessionRow> {
  const row = await db.captureSession.findFirst({ where: { id: sessionId, orgId: actor.orgId }, include: withRobot });
  if (!row) throw new AppError("NOT_FOUND", "No such capture session in this organisation");
  return row;
}

/** Wakes whoever waits on the session, in any web process (ids only; they re-read the rows). */
export async function notifySession(db: Tx, sessionId: string): Promise<void> {
  await db.$executeRaw`SELECT pg_notify(${CAPTURE_CHANNEL}, ${sessionId})`;
}

export const snapshotPath = (sessionId: string, snapshotId: string, format: "spz" | "ply") => `/api/captures/${sessionId}/snapshots/${snapshotId}.${format}`;
export const framePath = (sessionId: string, seq: number) => `/api/captures/${sessionId}/frames/${seq}`;

export function toSnapshotDto(row: Prisma.CaptureSnapshotGetPayload<object>): z.infer<typeof captureSnapshotSchema> {
  return {
    id: row.id,
    sessionId: row.sessionId,
    iteration: row.iteration,
    format: row.format === "spz" ? "spz" : "ply",
    splats: row.splats,
    shDegree: row.shDegree,
    sourceSha256: row.sourceSha256,
    sourceBytes: row.sourceBytes,
    spzSha256: row.spzSha256,
    spzBytes: row.spzBytes,
    bounds: row.bounds as z.infer<typeof captureSnapshotSchema>["bounds"],
    trainerName: row.trainerName,
    lastSeq: row.lastSeq,
    frameCount: row.frameCount,
    createdAt: row.createdAt,
    spzUrl: snapshotPath(row.sessionId, row.id, "spz"),
    plyUrl: snapshotPath(row.sessionId, row.id, "ply"),
  };
}
