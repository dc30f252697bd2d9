import crypto from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { startSshdRig, type SshdRig } from "../../tests/helpers/sshd-rig";
import { createApiToken } from "../auth/tokens.service";
import { POST as deploy } from "../../app/api/compat/deployment/deploy/route";
import { GET as listDevices, POST as addDevice } from "../../app/api/compat/deployment/devices/route";
import { POST as testDevice } from "../../app/api/compat/deployment/devices/[id]/test/route";

// The earlier deployment service's endpoints, called as its clients call them: a bearer token and JSON.

let rig: SshdRig;
beforeAll(async () => {
  rig = await startSshdRig(1);
});
afterAll(() => rig?.stop());

const post = (token: string, body: unknown) => new Request("http://localhost/deployment", { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) });

/** Takes this file's device jobs off the shared queue, so no other test file's worker runs them. */
async function dropQueuedDeployJobs(db: ReturnType<typeof testDb>, orgId: string) {
  const jobs = await db.job.findMany({ where: { orgId, kind: "fleet.deploy-device" }, select: { id: true } });
  await db.$executeRaw`SELECT graphile_worker.remove_job(key) FROM graphile_worker.jobs WHERE key = ANY(${jobs.map((j) => j.id)}::text[])`;
}

describe("deployment compatibility endpoints", { timeout: 180_000 }, () => {
  it("adds a device without echoing its secret, lists it, tests it and deploys to it", async () => {
    const db = testDb();
    const { owner, orgId } = await createOrgWithMember(db, "owner");
    const { token } = await createApiToken(db, { actor: owner, input: { name: "old client", scopes: ["admin"] } });
    const d = rig.devices[0];

    const added = await addDevice(post(token, { name: "legacy-1", host: d.host, port: d.port, username: d.user, private_key: rig.privateKey, model_dir: d.modelDir }));
    expect(added.status).toBe(201);
    const body = await added.json();
    expect(body).toMatchObject({ name: "legacy-1", host: d.host, port: d.port });
    expect(JSON.stringify(body)).not.toContain("PRIVATE KEY");

    const withPassword = await addDevice(post(token, { name: "legacy-2", host: "192.0.2.7", username: "robot", password: "hunter2-secret" }));
    expect(JSON.stringify(await withPassword.json())).not.toContain("hunter2-secret");
    const stored = await db.device.findFirstOrThrow({ where: { orgId, name: "legacy-2" } });
    expect(stored.credential).not.toContain("hunter2-secret");

    const list = await (await listDevices(new Request("http://localhost/deployment/devices", { headers: { authorization: `Bearer ${token}` } }))).json();
    expect(list.map((x: { name: string }) => x.name)).toEqual(["legacy-1", "legacy-2"]);
    expect(JSON.stringify(list)).not.toMatch(/hunter2|PRIVATE KEY|credential/);

    const tested = await (await testDevice(post(token, {}), { params: Promise.resolve({ id: body.id }) })).json();
    expect(tested).toMatchObject({ success: true, fingerprint: d.fingerprint() });

    const content = crypto.randomBytes(1000);
    const sha256 = crypto.createHash("sha256").update(content).digest("hex");
    const model = await db.model.create({ data: { orgId, name: "legacy-policy" } });
    const version = await db.modelVersion.create({ data: { orgId, modelId: model.id, number: 1, status: "ready", source: { kind: "upload" }, sha256, bytes: 1000n } });
    const byPath = await (await deploy(post(token, { model_path: `/srv/models/${sha256}.onnx`, device_id: body.id, parameters: {} }))).json();
    expect(byPath).toEqual({ message: "Deployment to legacy-1 started", task_id: expect.any(String) });
    expect((await db.job.findUniqueOrThrow({ where: { id: byPath.task_id } })).kind).toBe("fleet.deploy-device");
    const byId = await (await deploy(post(token, { model_version_id: version.id, device_id: body.id }))).json();
    expect(byId.task_id).not.toBe(byPath.task_id);
    const unknown = await deploy(post(token, { model_path: "/etc/passwd", device_id: body.id }));
    expect(unknown.status).toBe(400);
    await dropQueuedDeployJobs(db, orgId);
  });

  it("refuses a viewer's token to add devices or deploy", async () => {
    const db = testDb();
    const { actor } = await createOrgWithMember(db, "viewer");
    const { token } = await createApiToken(db, { actor, input: { name: "viewer", scopes: ["read"] } });
    expect((await addDevice(post(token, { name: "x", host: "192.0.2.1", username: "r", password: "p" }))).status).toBe(403);
    expect((await deploy(post(token, { model_version_id: crypto.randomUUID(), device_id: crypto.randomUUID() }))).status).toBe(403);
  });
});
