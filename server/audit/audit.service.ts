import type { z } from "zod";
import type { Tx } from "../db";
import type { Actor } from "../auth/roles";
import type { AuditAction, auditEventSchema, listAuditInput } from "./audit.schemas";

export async function recordAudit(
  tx: Tx,
  entry: { orgId: string | null; actor: Actor | null; action: AuditAction; target?: string; data?: Record<string, unknown> },
): Promise<void> {
  await tx.auditEvent.create({
    data: {
      orgId: entry.orgId,
      actorId: entry.actor?.userId ?? null,
      actor: entry.actor ? entry.actor.label + (entry.actor.tokenId ? " (API token)" : "") : "system",
      action: entry.action,
      target: entry.target ?? null,
      data: (entry.data ?? {}) as object,
    },
  });
}

export async function listAudit(
  tx: Tx,
  { orgId, input }: { orgId: string; input: z.infer<typeof listAuditInput> },
): Promise<{ items: z.infer<typeof auditEventSchema>[]; nextBefore: string | null }> {
  const rows = await tx.auditEvent.findMany({
    where: {
      orgId,
      ...(input.action ? { action: { startsWith: input.action } } : {}),
      ...(input.actor ? { actor: { contains: input.actor, mode: "insensitive" as const } } : {}),
      ...(input.before ? { id: { lt: BigInt(input.before) } } : {}),
    },
    orderBy: { id: "desc" },
    take: input.limit + 1,
  });
  const items = rows.slice(0, input.limit).map((r) => ({ id: r.id.toString(), actor: r.actor, action: r.action, target: r.target, data: r.data as Record<string, unknown>, at: r.at }));
  return { items, nextBefore: rows.length > input.limit ? items[items.length - 1].id : null };
}
