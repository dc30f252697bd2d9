import { z } from "zod";

export const alertSeveritySchema = z.enum(["warning", "critical"]);

export const raiseAlertInput = z.object({
  orgId: z.uuid(),
  /** What happened, dotted: "device.offline", "rollout.failed", "pipeline.failed". */
  kind: z.string().min(1).max(100),
  severity: alertSeveritySchema,
  title: z.string().min(1).max(200),
  message: z.string().max(4000),
  /** What it is about, e.g. "device:<id>". */
  target: z.string().max(200).optional(),
});
export type RaiseAlertInput = z.infer<typeof raiseAlertInput>;

export const alertSchema = z.object({
  id: z.uuid(),
  kind: z.string(),
  severity: alertSeveritySchema,
  title: z.string(),
  message: z.string(),
  target: z.string().nullable(),
  webhookStatus: z.string().nullable(),
  createdAt: z.date(),
  acknowledgedAt: z.date().nullable(),
});

export const listAlertsInput = z.object({
  isOpenOnly: z.boolean().default(false),
  limit: z.number().int().min(1).max(200).default(50),
});

export const alertSettingsSchema = z.object({
  /** http(s) only; empty clears it. */
  webhookUrl: z
    .url({ protocol: /^https?$/, error: "must be an http:// or https:// address" })
    .max(2000)
    .nullable(),
});

/** What the webhook receives, one POST per alert. */
export const webhookBodySchema = raiseAlertInput.extend({ id: z.uuid(), at: z.string() });
