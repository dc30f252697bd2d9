import type { z } from "zod";
import type { Db, Tx } from "../db";
import { AppError } from "../errors";
import { checkUrl, OutboundConnectError, OutboundRefusedError, safeFetch } from "../security/outbound";
import { raiseAlertInput, type alertSchema, type alertSettingsSchema, type listAlertsInput, type webhookBodySchema } from "./alerts.schemas";

// Alerts are rows people read in the app; an organisation may also name a webhook that gets
// each one as JSON. The webhook is best effort: a slow or failing one is recorded on the
// alert and never fails the caller (a health check or a rollout must not stop over it). It
// goes through the outbound policy and does not follow redirects.

const WEBHOOK_TIMEOUT_MS = 5000;

export async function raiseAlert(
  db: Db,
  { orgId, kind, severity, title, message, target }: { orgId: string; kind: string; severity: "warning" | "critical"; title: string; message: string; target?: string },
): Promise<void> {
  const input = raiseAlertInput.parse({ orgId, kind, severity, title, message: message.slice(0, 4000), target });
  const alert = await db.alert.create({ data: { ...input, target: input.target ?? null } });
  const settings = await db.alertSettings.findUnique({ where: { orgId } });
  if (!settings?.webhookUrl) return;
  const body: z.infer<typeof webhookBodySchema> = { ...input, id: alert.id, at: alert.createdAt.toISOString() };
  const status = await postWebhook(settings.webhookUrl, body);
  await db.alert.update({ where: { id: alert.id }, data: { webhookStatus: status } }).catch(() => {});
}

async function postWebhook(url: string, body: unknown): Promise<string> {
  const signal = AbortSignal.timeout(WEBHOOK_TIMEOUT_MS);
  try {
    const response = await safeFetch(url, {
      purpose: "webhook",
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "gantry-alerts" },
      body: JSON.stringify(body),
      signal,
      redirect: "manual",
    });
    await response.body?.cancel();
    return response.ok ? "sent" : `failed: HTTP ${response.status}`;
  } catch (error) {
    // A refused, reset, silent or non-HTTP endpoint all read the same, so the status cannot be
    // used to tell open ports from closed ones.
    if (signal.aborted || error instanceof OutboundConnectError) return `failed: no HTTP answer (the connection failed, or timed out after ${WEBHOOK_TIMEOUT_MS / 1000} s, or what answered was not HTTP)`;
    return `failed: ${error instanceof AppError ? error.message : "the request could not be sent"}`.slice(0, 300);
  }
}

export async function listAlerts(tx: Tx, { orgId, input }: { orgId: string; input: z.infer<typeof listAlertsInput> }): Promise<z.infer<typeof alertSchema>[]> {
  return tx.alert.findMany({
    where: { orgId, ...(input.isOpenOnly ? { acknowledgedAt: null } : {}) },
    orderBy: { createdAt: "desc" },
    take: input.limit,
    select: { id: true, kind: true, severity: true, title: true, message: true, target: true, webhookStatus: true, createdAt: true, acknowledgedAt: true },
  });
}

export async function acknowledgeAlert(tx: Tx, { orgId, alertId, userId }: { orgId: string; alertId: string; userId: string | null }): Promise<void> {
  const { count } = await tx.alert.updateMany({ where: { id: alertId, orgId, acknowledgedAt: null }, data: { acknowledgedAt: new Date(), acknowledgedById: userId } });
  if (count === 0 && !(await tx.alert.findFirst({ where: { id: alertId, orgId }, select: { id: true } }))) {
    throw new AppError("NOT_FOUND", "That alert does not exist in this organisation");
  }
}

export async function getAlertSettings(tx: Tx, orgId: string): Promise<z.infer<typeof alertSettingsSchema>> {
  const row = await tx.alertSettings.findUnique({ where: { orgId } });
  return { webhookUrl: row?.webhookUrl ?? null };
}

export async function setAlertSettings(tx: Tx, orgId: string, settings: z.infer<typeof alertSettingsSchema>): Promise<void> {
  // An address Gantry will not post to is refused now rather than on the first alert; a name
  // that does not resolve yet is accepted (each post checks again).
  if (settings.webhookUrl) {
    await checkUrl(settings.webhookUrl, "webhook").catch((error) => {
      if (error instanceof OutboundRefusedError) throw error;
    });
  }
  await tx.alertSettings.upsert({
    where: { orgId },
    create: { orgId, webhookUrl: settings.webhookUrl, updatedAt: new Date() },
    update: { webhookUrl: settings.webhookUrl, updatedAt: new Date() },
  });
}
