import { z } from "zod";
import { acknowledgeAlert, getAlertSettings, listAlerts, setAlertSettings } from "../../alerts/alerts.service";
import { alertSchema, alertSettingsSchema, listAlertsInput } from "../../alerts/alerts.schemas";
import { recordAudit } from "../../audit/audit.service";
import { createDevice, deleteDevice, getDevice, listDevices, repinHostKey, testConnection, updateDevice } from "../../fleet/devices.service";
import { discoverSshHosts } from "../../fleet/discovery.service";
import { getDeviceHealthHistory } from "../../fleet/health-history.service";
import { env } from "../../env";
import {
  createDeviceInput,
  createRolloutInput,
  deviceDetailSchema,
  deviceHealthHistoryInput,
  deviceHealthHistorySchema,
  deviceIdInput,
  deviceSummarySchema,
  discoverInput,
  discoveredHostSchema,
  repinInput,
  rollbackDeviceInput,
  rollbackRolloutInput,
  rolloutDetailSchema,
  rolloutIdInput,
  rolloutSummarySchema,
  testConnectionResultSchema,
  updateDeviceInput,
} from "../../fleet/fleet.schemas";
import { cancelRollout, createRollout, getRollout, listRollouts, rollbackDevice, rollbackRollout } from "../../fleet/rollouts.service";
import { orgProcedure, router } from "../trpc";

const idOutput = z.object({ id: z.uuid() });

// Viewers read; operators roll out and back; admins manage devices, credentials and host keys.
export const fleetRouter = router({
  devices: orgProcedure("viewer").output(z.array(deviceSummarySchema)).query(({ ctx }) => listDevices(ctx.db, { orgId: ctx.orgActor.orgId })),
  device: orgProcedure("viewer").input(deviceIdInput).output(deviceDetailSchema).query(({ ctx, input }) => getDevice(ctx.db, { orgId: ctx.orgActor.orgId, deviceId: input.deviceId })),
  /** The device's health checks over a window, for its chart. */
  deviceHealth: orgProcedure("viewer")
    .input(deviceHealthHistoryInput)
    .output(deviceHealthHistorySchema)
    .query(({ ctx, input }) => getDeviceHealthHistory(ctx.db, { orgId: ctx.orgActor.orgId, input, intervalSec: env().DEVICE_HEALTH_INTERVAL })),
  createDevice: orgProcedure("admin").input(createDeviceInput).output(idOutput).mutation(({ ctx, input }) => createDevice(ctx.db, { actor: ctx.orgActor, input })),
  updateDevice: orgProcedure("admin").input(updateDeviceInput).output(idOutput).mutation(({ ctx, input }) => updateDevice(ctx.db, { actor: ctx.orgActor, input })),
  deleteDevice: orgProcedure("admin").input(deviceIdInput).output(idOutput).mutation(({ ctx, input }) => deleteDevice(ctx.db, { actor: ctx.orgActor, deviceId: input.deviceId })),
  /** Pins the host key on first contact, so it is an admin's call. */
  testConnection: orgProcedure("admin")
    .input(deviceIdInput)
    .output(testConnectionResultSchema)
    .mutation(({ ctx, input }) => testConnection(ctx.db, { actor: ctx.orgActor, orgId: ctx.orgActor.orgId, deviceId: input.deviceId })),
  repin: orgProcedure("admin")
    .input(repinInput)
    .output(z.object({ fingerprint: z.string(), previous: z.string().nullable() }))
    .mutation(({ ctx, input }) => repinHostKey(ctx.db, { actor: ctx.orgActor, input })),
  discover: orgProcedure("admin")
    .input(discoverInput)
    .output(z.array(discoveredHostSchema))
    .mutation(({ ctx, input }) => discoverSshHosts(ctx.db, { orgId: ctx.orgActor.orgId, input })),

  rollouts: orgProcedure("viewer").output(z.array(rolloutSummarySchema)).query(({ ctx }) => listRollouts(ctx.db, { orgId: ctx.orgActor.orgId })),
  rollout: orgProcedure("viewer").input(rolloutIdInput).output(rolloutDetailSchema).query(({ ctx, input }) => getRollout(ctx.db, { orgId: ctx.orgActor.orgId, deploymentId: input.deploymentId })),
  createRollout: orgProcedure("operator").input(createRolloutInput).output(idOutput).mutation(({ ctx, input }) => createRollout(ctx.db, { actor: ctx.orgActor, input })),
  /** Skips the devices not started and stops the running ones (a swapped device goes back). */
  cancelRollout: orgProcedure("operator").input(rolloutIdInput).output(idOutput).mutation(({ ctx, input }) => cancelRollout(ctx.db, { actor: ctx.orgActor, deploymentId: input.deploymentId })),
  rollbackRollout: orgProcedure("operator").input(rollbackRolloutInput).output(idOutput).mutation(({ ctx, input }) => rollbackRollout(ctx.db, { actor: ctx.orgActor, input })),
  rollbackDevice: orgProcedure("operator").input(rollbackDeviceInput).output(idOutput).mutation(({ ctx, input }) => rollbackDevice(ctx.db, { actor: ctx.orgActor, input })),

  alerts: orgProcedure("viewer").input(listAlertsInput).output(z.array(alertSchema)).query(({ ctx, input }) => listAlerts(ctx.db, { orgId: ctx.orgActor.orgId, input })),
  acknowledgeAlert: orgProcedure("operator")
    .input(z.object({ alertId: z.uuid() }))
    .output(z.object({ ok: z.literal(true) }))
    .mutation(async ({ ctx, input }) => {
      await acknowledgeAlert(ctx.db, { orgId: ctx.orgActor.orgId, alertId: input.alertId, userId: ctx.orgActor.userId });
      return { ok: true as const };
    }),
  alertSettings: orgProcedure("admin").output(alertSettingsSchema).query(({ ctx }) => getAlertSettings(ctx.db, ctx.orgActor.orgId)),
  setAlertSettings: orgProcedure("admin")
    .input(alertSettingsSchema)
    .output(alertSettingsSchema)
    .mutation(({ ctx, input }) =>
      ctx.db.$transaction(async (tx) => {
        await setAlertSettings(tx, ctx.orgActor.orgId, input);
        await recordAudit(tx, { orgId: ctx.orgActor.orgId, actor: ctx.orgActor, action: "alert.settings", data: { hasWebhook: Boolean(input.webhookUrl) } });
        return input;
      }),
    ),
});
