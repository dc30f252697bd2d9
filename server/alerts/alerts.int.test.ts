import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { acknowledgeAlert, listAlerts, raiseAlert, setAlertSettings } from "./alerts.service";

const db = testDb();
const servers: http.Server[] = [];
afterAll(() => servers.forEach((s) => s.close()));

function webhookServer(status: number): Promise<{ url: string; bodies: unknown[] }> {
  const bodies: unknown[] = [];
  const server = http.createServer((req, res) => {
    let data = "";
    req.on("data", (c) => (data += c));
    req.on("end", () => {
      bodies.push(JSON.parse(data));
      res.writeHead(status).end();
    });
  });
  servers.push(server);
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, bodies })));
}

describe("alerts", () => {
  it("records an alert without a webhook, lists it and acknowledges it", async () => {
    const { orgId, owner } = await createOrgWithMember(db);
    await raiseAlert(db, { orgId, kind: "device.offline", severity: "critical", title: "jetson-1 is offline", message: "No answer on port 22", target: "device:x" });
    const [alert] = await listAlerts(db, { orgId, input: { isOpenOnly: true, limit: 10 } });
    expect(alert).toMatchObject({ kind: "device.offline", severity: "critical", title: "jetson-1 is offline", target: "device:x", webhookStatus: null });
    await acknowledgeAlert(db, { orgId, alertId: alert.id, userId: owner.userId });
    expect(await listAlerts(db, { orgId, input: { isOpenOnly: true, limit: 10 } })).toEqual([]);
    const other = await createOrgWithMember(db);
    await expect(acknowledgeAlert(db, { orgId: other.orgId, alertId: alert.id, userId: null })).rejects.toThrow(/does not exist/);
  });

  it("posts to the organisation's webhook and records the outcome", async () => {
    const { orgId } = await createOrgWithMember(db);
    const hook = await webhookServer(204);
    await setAlertSettings(db, orgId, { webhookUrl: hook.url });
    await raiseAlert(db, { orgId, kind: "rollout.failed", severity: "warning", title: "Rollout failed", message: "2 of 3 devices failed" });
    expect(hook.bodies).toEqual([expect.objectContaining({ orgId, kind: "rollout.failed", title: "Rollout failed", message: "2 of 3 devices failed" })]);
    const [alert] = await listAlerts(db, { orgId, input: { isOpenOnly: false, limit: 10 } });
    expect(alert.webhookStatus).toBe("sent");
  });

  it("never fails the caller when the webhook fails or cannot be reached", async () => {
    const { orgId } = await createOrgWithMember(db);
    const hook = await webhookServer(500);
    await setAlertSettings(db, orgId, { webhookUrl: hook.url });
    await raiseAlert(db, { orgId, kind: "device.offline", severity: "critical", title: "a", message: "b" });
    const closed = await webhookServer(200);
    await new Promise((r) => servers.pop()!.close(r));
    await setAlertSettings(db, orgId, { webhookUrl: closed.url });
    await raiseAlert(db, { orgId, kind: "device.offline", severity: "critical", title: "c", message: "d" });
    const alerts = await listAlerts(db, { orgId, input: { isOpenOnly: false, limit: 10 } });
    expect(alerts.map((a) => a.webhookStatus).sort()).toEqual(["failed: HTTP 500", "failed: no HTTP answer (the connection failed, or timed out after 5 s, or what answered was not HTTP)"]);
  });
});
