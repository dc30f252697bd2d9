import type { Db } from "../db";
import { AppError } from "../errors";
import { AccessRecheck, type StreamAccessOptions } from "../auth/access-recheck";
import type { OrgActor } from "../auth/roles";
import { isInFlight, JOINT_SAMPLES_CHANNEL, jointSampleEventSchema, jointSampleSchema, type JointSample } from "./hardware.schemas";
import type { ChannelSource } from "../jobs/realtime";
import { z } from "zod";

// The joint readings of a running command (live joints, range recording) as they arrive, for a
// browser or anything else that subscribes. The agent posts batches to whichever web process
// its request lands on; that process NOTIFYs them, so a subscriber on any process sees them.
// Nothing is kept: a subscriber that falls behind loses the oldest batches, not the newest.

const payloadSchema = z.object({ commandId: z.uuid(), samples: z.array(jointSampleSchema) });

export type JointSampleEvent = z.infer<typeof jointSampleEventSchema>;

/** How many batches wait for a slow subscriber before the oldest are dropped. */
const MAX_WAITING = 200;
/** How often the command's row is looked at, to end the stream when the command ends. */
const STATUS_EVERY_MS = 1000;

/**
 * A command's readings as they arrive, until it ends. With `whyNotAllowed`/`watchAccess` the
 * caller's access is asked again while the stream is open (see AccessRecheck): a member removed,
 * a session ended or a token revoked ends it with FORBIDDEN and the reason.
 */
export async function openJointSampleStream(
  db: Db,
  { actor, commandId, hub, signal, statusEveryMs = STATUS_EVERY_MS, accessEveryMs, ...access }: { actor: OrgActor; commandId: string; hub: ChannelSource; signal: AbortSignal; statusEveryMs?: number; accessEveryMs?: number } & StreamAccessOptions,
): Promise<AsyncGenerator<JointSampleEvent>> {
  const command = await db.agentCommand.findFirst({ where: { id: commandId, orgId: actor.orgId }, select: { id: true, kind: true } });
  if (!command) throw new AppError("NOT_FOUND", "No such command in this organisation");
  const waiting: JointSample[][] = [];
  let wake: (() => void) | null = null;
  const unlisten = hub.listen(JOINT_SAMPLES_CHANNEL, (payload) => {
    if (!payload) return;
    let parsed: z.infer<typeof payloadSchema>;
    try {
      const result = payloadSchema.safeParse(JSON.parse(payload));
      if (!result.success) return;
      parsed = result.data;
    } catch {
      return;
    }
    if (parsed.commandId !== commandId) return;
    waiting.push(parsed.samples);
    if (waiting.length > MAX_WAITING) waiting.splice(0, waiting.length - MAX_WAITING);
    wake?.();
  });
  // Nothing is replayed: the stream is open once batches posted from now on reach it.
  try {
    await hub.ensureConnected?.();
  } catch (error) {
    unlisten();
    throw error;
  }
  // One abort listener for the stream's life (not one per wait).
  const onAbort = () => wake?.();
  signal.addEventListener("abort", onAbort, { once: true });
  const recheck = new AccessRecheck({ ...access, everyMs: accessEveryMs, what: "Live joints" }, () => wake?.());
  async function* events(): AsyncGenerator<JointSampleEvent> {
    let seq = 0;
    let checkedAt = 0;
    try {
      while (!signal.aborted) {
        await recheck.check();
        // Checked between batches too: a steady stream may never leave this loop.
        while (waiting.length) {
          yield { type: "samples", seq: ++seq, samples: waiting.shift()! };
          await recheck.check();
        }
        if (Date.now() - checkedAt >= statusEveryMs) {
          checkedAt = Date.now();
          const row = await db.agentCommand.findUnique({ where: { id: commandId }, select: { status: true, error: true } });
          if (!row || !isInFlight(row.status)) {
            // Batches that arrived with the result still go out first.
            while (waiting.length) yield { type: "samples", seq: ++seq, samples: waiting.shift()! };
            yield { type: "ended", seq: ++seq, status: row?.status ?? "removed", error: row?.error ?? null };
            return;
          }
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(statusEveryMs, recheck.msUntilDue()));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
          if (waiting.length || signal.aborted) wake();
        });
        wake = null;
      }
    } finally {
      unlisten();
      recheck.stop();
      signal.removeEventListener("abort", onAbort);
    }
  }
  return events();
}
