import { z } from "zod";

export const auditActions = [
  "auth.sign_up",
  "auth.sign_in",
  "auth.sign_in_failed",
  "org.create",
  "org.rename",
  "member.role_change",
  "member.remove",
  "invite.create",
  "invite.revoke",
  "invite.accept",
  "token.create",
  "token.revoke",
  "job.start",
  "job.cancel",
  "job.retry",
  "model.create",
  "model.update",
  "model.delete",
  "model.version_add",
  "model.revalidate",
  "device.create",
  "device.update",
  "device.delete",
  "device.test",
  "device.repin",
  "device.rollback",
  "rollout.create",
  "rollout.rollback",
  "rollout.cancel",
  "alert.settings",
  "endpoint.create",
  "endpoint.redeploy",
  "endpoint.change_version",
  "endpoint.undeploy",
  "endpoint.delete",
  "dataset.import",
  "dataset.episode_delete",
  "dataset.episode_restore",
  "dataset.episode_retry",
  "dataset.task_rename",
  "dataset.delete",
] as const;
export const auditActionSchema = z.enum(auditActions);
export type AuditAction = z.infer<typeof auditActionSchema>;

export const listAuditInput = z.object({
  action: z.string().max(64).optional(),
  actor: z.string().max(200).optional(),
  limit: z.number().int().min(1).max(200).default(50),
  before: z.string().regex(/^\d+$/).optional(),
});

export const auditEventSchema = z.object({
  id: z.string(),
  actor: z.string(),
  action: z.string(),
  target: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
  at: z.date(),
});
