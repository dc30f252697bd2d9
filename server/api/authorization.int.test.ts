import fs from "node:fs";
import path from "node:path";
import { TRPCError } from "@trpc/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { addMember, createOrgWithMember } from "../../tests/helpers/factories";
import { resolveRequestIdentity } from "../auth/request-actor";
import { roles, type OrgActor, type Role } from "../auth/roles";
import { sessionCookie } from "../../tests/helpers/session";
import { createApiToken } from "../auth/tokens.service";
import { createInvite } from "../orgs/invites.service";
import { startSelftest } from "../system/selftest.service";
import { addVersionFromUrl, createModel } from "../models/registry.service";
import { RealtimeHub } from "../jobs/realtime";
import { appRouter, createCaller } from "./root";
import type { Context } from "./trpc";

// Every tRPC procedure and every route handler, three ways: anonymous → UNAUTHORIZED,
// a member of another organisation → FORBIDDEN or NOT_FOUND, too low a role → FORBIDDEN.
// A new procedure or route fails this file until it is listed here with its access.

const db = testDb();
const hub = new RealtimeHub({ url: process.env.DATABASE_URL!, db });
afterAll(() => hub.stop());

/** Procedures anyone may call, and why. */
const PUBLIC_PROCEDURES: Record<string, string> = {
  "auth.signUp": "creating an account",
  "auth.providers": "the sign-in page lists sign-in methods",
  "invites.describe": "the invite page shows the organisation before sign-in; needs the secret token",
};

/** Route handlers that answer without a session, and why. */
const PUBLIC_ROUTES: Record<string, string> = {
  "api/auth/[...nextauth]": "next-auth's own sign-in and session endpoints",
  "api/health": "load balancers and monitors; reports no secrets",
  "api/openapi.json": "the API reference; describes the code, nothing of the instance",
  "api/trpc/[trpc]": "the tRPC transport; every procedure is checked above",
};

let orgA: { orgId: string; members: Record<Role, OrgActor> };
let orgB: { orgId: string; owner: OrgActor };
let jobA: string;
let tokenA: string;
let inviteA: string;
let modelA: string;
let modelVersionA: string;
let endpointA: string;
let datasetA: string;
let episodeA: string;
let targetA: string;
let runA: string;
let deviceA: string;
let deploymentA: string;
let alertA: string;
let evaluationA: string;
let agentA: string;
let agentCommandA: string;
let robotA: string;
let captureA: string;

async function sessionHeaders(actor: OrgActor | null, requestedOrgId?: string): Promise<Headers> {
  const headers = new Headers();
  if (actor) headers.set("cookie", await sessionCookie(db, actor.userId));
  if (requestedOrgId) headers.set("x-gantry-org", requestedOrgId);
  return headers;
}

async function contextFor(actor: OrgActor | null, requestedOrgId?: string): Promise<Context> {
  const identity = await resolveRequestIdentity(db, await sessionHeaders(actor, requestedOrgId));
  return { ...identity, db, hub, baseUrl: "http://localhost" };
}

/** Inputs that name organisation A's things, for every procedure that takes input. */
function sampleInputs(): Record<string, unknown> {
  return {
    "auth.signUp": undefined,
    "auth.changePassword": { currentPassword: "probe", newPassword: "a probing passphrase" },
    "orgs.create": { name: "Another lab" },
    "orgs.switch": { orgId: orgA.orgId },
    "orgs.rename": { name: "Renamed" },
    "orgs.setRole": { userId: orgA.members.viewer.userId, role: "operator" },
    "orgs.removeMember": { userId: orgA.members.viewer.userId },
    "invites.create": { role: "viewer" },
    "invites.revoke": { inviteId: inviteA },
    "invites.accept": { token: "x".repeat(20) },
    "tokens.create": { name: "probe", scopes: ["read"] },
    "tokens.revoke": { tokenId: tokenA },
    "audit.list": {},
    "jobs.list": {},
    "jobs.get": { jobId: jobA },
    "jobs.events": { jobId: jobA },
    "jobs.cancel": { jobId: jobA },
    "jobs.retry": { jobId: jobA },
    "jobs.onJobEvents": { jobId: jobA },
    "jobs.onOrgEvents": undefined,
    "system.startSelftest": { steps: 1, stepMs: 0 },
    "models.get": { modelId: modelA },
    "models.create": { name: "Probe model" },
    "models.update": { modelId: modelA, description: "probed" },
    "models.delete": { modelId: modelA },
    "models.addVersionFromUrl": { modelId: modelA, url: "https://example.test/model.onnx" },
    "models.addVersionFromHub": { modelId: modelA, repo: "lab/policy", filename: "model.onnx" },
    "models.revalidate": { versionId: modelVersionA, testVector: { inputs: { x: [[1]] } } },
    "fleet.device": { deviceId: deviceA },
    "fleet.deviceHealth": { deviceId: deviceA },
    "fleet.createDevice": { name: "probe-device", host: "192.0.2.1", username: "robot", credential: { kind: "password", password: "probe" } },
    "fleet.updateDevice": { deviceId: deviceA, tags: ["probed"] },
    "fleet.deleteDevice": { deviceId: deviceA },
    "fleet.testConnection": { deviceId: deviceA },
    "fleet.repin": { deviceId: deviceA, fingerprint: `SHA256:${"A".repeat(43)}` },
    "fleet.discover": { range: "127.0.0.1", port: 1, timeoutMs: 100 },
    "fleet.rollout": { deploymentId: deploymentA },
    "fleet.createRollout": { modelVersionId: modelVersionA, selector: { deviceIds: [deviceA] } },
    "fleet.cancelRollout": { deploymentId: deploymentA },
    "fleet.rollbackRollout": { deploymentId: deploymentA },
    "fleet.rollbackDevice": { deviceId: deviceA, modelVersionId: modelVersionA },
    "fleet.alerts": {},
    "fleet.acknowledgeAlert": { alertId: alertA },
    "fleet.setAlertSettings": { webhookUrl: null },
    "hardware.agent": { agentId: agentA },
    "hardware.commands": { agentId: agentA },
    "hardware.command": { commandId: agentCommandA },
    "hardware.sendCommand": { agentId: agentA, kind: "ping", input: {} },
    "hardware.removeAgent": { agentId: agentA },
    "hardware.cancelCommand": { commandId: agentCommandA },
    "hardware.onJointSamples": { commandId: agentCommandA },
    "hardware.robots": {},
    "hardware.recipes": undefined,
    "hardware.robot": { robotId: robotA },
    "hardware.robotChecks": { robotId: robotA },
    "hardware.createRobot": { agentId: agentA, name: "probe-arm", type: "so101_follower", port: null },
    "hardware.updateRobot": { robotId: robotA, port: "/dev/ttyACM9" },
    "hardware.deleteRobot": { robotId: robotA },
    "hardware.calibrations": { robotId: robotA },
    "hardware.importCalibration": { robotId: robotA, text: "{}" },
    "hardware.applyCalibration": { robotId: robotA, calibration: {}, writeMotors: false },
    "hardware.exportCalibration": { robotId: robotA },
    "endpoints.get": { endpointId: endpointA },
    "endpoints.stats": { endpointId: endpointA },
    "endpoints.tryIt": { endpointId: endpointA, inputs: { x: [[1]] } },
    "endpoints.create": { name: "probe-endpoint", modelVersionId: modelVersionA },
    "endpoints.changeVersion": { endpointId: endpointA, modelVersionId: modelVersionA },
    "endpoints.undeploy": { endpointId: endpointA },
    "endpoints.delete": { endpointId: endpointA },
    "datasets.get": { datasetId: datasetA },
    "datasets.episodes": { datasetId: datasetA },
    "datasets.episode": { episodeId: episodeA },
    "datasets.deleteEpisode": { episodeId: episodeA },
    "datasets.restoreEpisode": { episodeId: episodeA },
    "datasets.renameTask": { datasetId: datasetA, from: "probe", to: "probed" },
    "datasets.retryEpisode": { episodeId: episodeA },
    "datasetImports.inspectFolder": { path: "/nonexistent/dataset" },
    "datasetImports.importFolder": { path: "/nonexistent/dataset", repoId: "probe/import" },
    "datasetImports.importStaged": { stagingId: "0123456789abcdef", repoId: "probe/import", mapping: { action: "action", state: "observation.state" } },
    "datasetImports.discardStaged": { stagingId: "0123456789abcdef" },
    "datasets.delete": { datasetId: datasetA },
    "datasets.bucketExport": { datasetId: datasetA },
    "datasets.exportToBucket": { datasetId: datasetA },
    "training.createTarget": { name: "probe-gpu", host: "192.0.2.1", username: "robot", credential: { kind: "password", password: "probe" } },
    "training.deleteTarget": { targetId: targetA },
    "training.testTarget": { targetId: targetA },
    "training.runs": {},
    "training.run": { runId: runA },
    "training.log": { runId: runA },
    "training.onLog": { runId: runA },
    "training.metrics": { runId: runA },
    "training.startRun": { datasetId: datasetA, targetId: targetA, policyType: "act" },
    "training.cancelRun": { runId: runA },
    "training.resumeRun": { runId: runA },
    "training.retryRun": { runId: runA },
    "training.pullCheckpoint": { runId: runA, step: 20 },
    "evaluation.start": { datasetId: datasetA, metrics: ["t", "v"], imageEncoderVersionId: modelVersionA },
    "evaluation.list": { datasetId: datasetA },
    "evaluation.latest": { datasetId: datasetA },
    "evaluation.get": { evaluationId: evaluationA },
    "evaluation.setGate": { enabled: false, overall: null, metrics: {} },
    "evaluation.excludeFlagged": { evaluationId: evaluationA, repoId: "lab/derived-probe" },
    "evaluation.startExternal": { source: { kind: "folder", path: "/nonexistent/dataset" }, metrics: ["t"] },
    "captures.list": {},
    "captures.get": { sessionId: captureA },
    "captures.onJoints": { sessionId: captureA },
    "captures.snapshots": { sessionId: captureA },
    "captures.create": { name: "Probe capture" },
    "captures.start": { sessionId: captureA },
    "captures.stop": { sessionId: captureA },
    "captures.reset": { sessionId: captureA },
    "captures.startLive": { sessionId: captureA },
    "captures.stopLive": { sessionId: captureA },
    "captures.delete": { sessionId: captureA },
  };
}

function sampleInput(procedure: string): unknown {
  return sampleInputs()[procedure];
}

/** Procedures whose input names one of organisation A's things (the rest act on the caller's own org). */
const NAMES_ORG_A_THING = new Set(["orgs.setRole", "orgs.removeMember", "invites.revoke", "tokens.revoke", "jobs.get", "jobs.events", "jobs.cancel", "jobs.retry", "jobs.onJobEvents",
  "models.get", "models.update", "models.delete", "models.addVersionFromUrl", "models.addVersionFromHub", "models.revalidate",
  "fleet.device", "fleet.deviceHealth", "fleet.updateDevice", "fleet.deleteDevice", "fleet.testConnection", "fleet.repin", "fleet.rollout", "fleet.createRollout", "fleet.cancelRollout", "fleet.rollbackRollout", "fleet.rollbackDevice", "fleet.acknowledgeAlert",
  "hardware.agent", "hardware.commands", "hardware.command", "hardware.sendCommand", "hardware.removeAgent",
  "hardware.cancelCommand", "hardware.onJointSamples", "hardware.robot", "hardware.robotChecks", "hardware.createRobot", "hardware.updateRobot", "hardware.deleteRobot", "hardware.calibrations", "hardware.importCalibration", "hardware.applyCalibration", "hardware.exportCalibration",
  "endpoints.get", "endpoints.stats", "endpoints.tryIt", "endpoints.create", "endpoints.changeVersion", "endpoints.undeploy", "endpoints.delete",
  "datasets.get", "datasets.episodes", "datasets.episode", "datasets.deleteEpisode", "datasets.restoreEpisode", "datasets.renameTask", "datasets.retryEpisode", "datasets.delete", "datasets.bucketExport", "datasets.exportToBucket",
  "training.deleteTarget", "training.testTarget", "training.run", "training.log", "training.onLog", "training.metrics", "training.startRun", "training.cancelRun", "training.resumeRun", "training.retryRun", "training.pullCheckpoint",
  "evaluation.start", "evaluation.list", "evaluation.latest", "evaluation.get", "evaluation.excludeFlagged",
  "captures.get", "captures.onJoints", "captures.snapshots", "captures.start", "captures.stop", "captures.reset", "captures.startLive", "captures.stopLive", "captures.delete"]);

async function call(ctx: Context, procedure: string, input: unknown): Promise<unknown> {
  const caller = createCaller(ctx) as unknown as Record<string, Record<string, (i: unknown) => Promise<unknown>>>;
  const [group, name] = procedure.split(".");
  const result = await caller[group][name](input);
  // A subscription resolves to a stream; the first item (or its error) is what counts.
  if (result && typeof (result as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function") {
    const iterator = (result as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    try {
      await iterator.next();
    } finally {
      await iterator.return?.();
    }
  }
  return result;
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "OK";
  } catch (error) {
    return error instanceof TRPCError ? error.code : `unexpected ${String(error)}`;
  }
}

const procedures = Object.entries(appRouter._def.procedures as unknown as Record<string, { _def: { meta?: { access?: string }; type: string } }>);

beforeAll(async () => {
  const a = await createOrgWithMember(db, "owner");
  const members = { owner: a.owner } as Record<Role, OrgActor>;
  for (const role of ["admin", "operator", "viewer"] as const) members[role] = await addMember(db, a.orgId, role);
  orgA = { orgId: a.orgId, members };
  const b = await createOrgWithMember(db, "owner");
  orgB = { orgId: b.orgId, owner: b.owner };
  jobA = (await startSelftest(db, { actor: members.operator, input: { steps: 1, stepMs: 0 } })).jobId;
  tokenA = (await createApiToken(db, { actor: members.viewer, input: { name: "viewer token", scopes: ["read"] } })).id;
  inviteA = (await createInvite(db, { actor: members.admin, role: "viewer", expiresInDays: 1, baseUrl: "http://localhost" })).id;
  modelA = (await createModel(db, { actor: members.operator, input: { name: "Org A policy", description: "" } })).id;
  modelVersionA = (await addVersionFromUrl(db, { actor: members.operator, input: { modelId: modelA, url: "https://example.test/a.onnx", dims: {} } })).versionId;
  // A stopped endpoint: probes may try to change, undeploy or delete it.
  endpointA = (await db.endpoint.create({ data: { orgId: orgA.orgId, name: "org-a-endpoint", modelVersionId: modelVersionA, status: "stopped", settings: {} } })).id;
  // A dataset with one failed episode: probes may read, delete, restore, rename or retry it.
  datasetA = (await db.dataset.create({ data: { orgId: orgA.orgId, repoId: `org-a/probe-${orgA.orgId.slice(0, 8)}` } })).id;
  episodeA = (await db.episode.create({ data: { orgId: orgA.orgId, datasetId: datasetA, number: 0, mode: "edge", status: "failed", task: "probe", error: "probe" } })).id;
  // A device that cannot be reached and a finished rollout to it: probes may read, change or roll them back.
  deviceA = (await db.device.create({ data: { orgId: orgA.orgId, name: "org-a-device", host: "192.0.2.1", username: "robot", authKind: "password", credential: "v1:", modelDir: "/opt/gantry", restartCommand: "true", healthCommand: "true" } })).id;
  deploymentA = (await db.deployment.create({ data: { orgId: orgA.orgId, modelVersionId: modelVersionA, strategy: { kind: "all" }, selector: { deviceIds: [deviceA] }, status: "failed", targets: { create: [{ orgId: orgA.orgId, deviceId: deviceA, modelVersionId: modelVersionA, phase: 0, state: "failed" }] } } })).id;
  // A training target that cannot be reached and a failed run on it: probes may read, test, cancel, resume or retry them.
  targetA = (await db.trainingTarget.create({ data: { orgId: orgA.orgId, name: "org-a-gpu", host: "192.0.2.1", username: "robot", authKind: "password", credential: "v1:", workDir: "~/gantry", commandTemplate: "lerobot-train --output_dir={output}" } })).id;
  runA = (await db.trainingRun.create({ data: { orgId: orgA.orgId, targetId: targetA, datasetId: datasetA, name: "org-a-run", policyType: "act", steps: 10, saveFreq: 10, logFreq: 10, status: "failed", lastStep: 5 } })).id;
  evaluationA = (await db.datasetEvaluation.create({ data: { orgId: orgA.orgId, datasetId: datasetA, metrics: ["t"], status: "failed", error: "probe" } })).id;
  // An agent that has never connected and a finished ping to it: probes may read, ping or remove it.
  agentA = (await db.agent.create({ data: { orgId: orgA.orgId, name: "org-a-agent" } })).id;
  agentCommandA = (await db.agentCommand.create({ data: { orgId: orgA.orgId, agentId: agentA, kind: "ping", input: {}, status: "succeeded", deadline: new Date(), createdBy: "probe" } })).id;
  robotA = (await db.robot.create({ data: { orgId: orgA.orgId, agentId: agentA, name: "org-a-arm", role: "follower", type: "so101_follower", protocol: "feetech", motors: [{ name: "gripper", id: 6 }] } })).id;
  // A stopped capture session: probes may read, start, stop, reset or delete it.
  captureA = (await db.captureSession.create({ data: { orgId: orgA.orgId, name: "org-a-capture", status: "stopped", createdBy: "probe" } })).id;
  alertA = (await db.alert.create({ data: { orgId: orgA.orgId, kind: "probe", severity: "warning", title: "probe", message: "probe" } })).id;
});

describe("tRPC authorization", () => {
  it("knows every procedure's access, and only listed ones are public", () => {
    expect(procedures.length).toBeGreaterThan(10);
    for (const [name, proc] of procedures) {
      const access = proc._def.meta?.access;
      expect(access, `${name} has no access rule: build it from publicProcedure, authedProcedure or orgProcedure(role)`).toBeDefined();
      expect(["public", "authed", ...roles], name).toContain(access);
      if (access === "public") expect(PUBLIC_PROCEDURES[name], `${name} is public but not listed in PUBLIC_PROCEDURES`).toBeDefined();
      const takesInput = ((proc._def as { inputs?: unknown[] }).inputs ?? []).length > 0;
      if (takesInput && access !== "public") expect(name in sampleInputs(), `${name} takes input: add a sample input naming organisation A's things`).toBe(true);
    }
  });

  it.each(procedures.filter(([, p]) => p._def.meta?.access !== "public").map(([n]) => n))("%s refuses anonymous callers", async (name) => {
    expect(await codeOf(call(await contextFor(null), name, sampleInput(name)))).toBe("UNAUTHORIZED");
  });

  const orgScoped = procedures.filter(([, p]) => roles.includes(p._def.meta?.access as Role)).map(([n]) => n);

  it.each(orgScoped)("%s refuses a member of another organisation who asks for this one", async (name) => {
    expect(await codeOf(call(await contextFor(orgB.owner, orgA.orgId), name, sampleInput(name)))).toBe("FORBIDDEN");
  });

  it.each(orgScoped.filter((n) => NAMES_ORG_A_THING.has(n)))("%s does not reach another organisation's things", async (name) => {
    expect(["FORBIDDEN", "NOT_FOUND"]).toContain(await codeOf(call(await contextFor(orgB.owner), name, sampleInput(name))));
  });

  it.each(orgScoped.filter((n) => n !== "orgs.members" && procedures.find(([p]) => p === n)![1]._def.meta!.access !== "viewer"))(
    "%s refuses a member whose role is too low",
    async (name) => {
      const needed = procedures.find(([p]) => p === name)![1]._def.meta!.access as Role;
      const below = roles[roles.indexOf(needed) - 1];
      expect(await codeOf(call(await contextFor(orgA.members[below]), name, sampleInput(name)))).toBe("FORBIDDEN");
    },
  );

  it("lets each role do what its role allows", async () => {
    expect(await codeOf(call(await contextFor(orgA.members.viewer), "jobs.get", { jobId: jobA }))).toBe("OK");
    expect(await codeOf(call(await contextFor(orgA.members.operator), "system.startSelftest", { steps: 1, stepMs: 0 }))).toBe("OK");
    expect(await codeOf(call(await contextFor(orgA.members.admin), "invites.list", undefined))).toBe("OK");
    expect(await codeOf(call(await contextFor(orgA.members.viewer), "models.get", { modelId: modelA }))).toBe("OK");
    expect(await codeOf(call(await contextFor(orgA.members.operator), "models.update", { modelId: modelA, description: "checked" }))).toBe("OK");
    expect(await codeOf(call(await contextFor(orgA.members.viewer), "evaluation.imageEncoders", undefined))).toBe("OK");
    // Scorings of folders and hub datasets: viewers read them, operators start them.
    expect(await codeOf(call(await contextFor(orgA.members.viewer), "evaluation.listExternal", undefined))).toBe("OK");
    expect(procedures.find(([p]) => p === "evaluation.listExternal")![1]._def.meta!.access).toBe("viewer");
    expect(procedures.find(([p]) => p === "evaluation.startExternal")![1]._def.meta!.access).toBe("operator");
    // Captures: viewers watch them, operators run them, admins delete them.
    expect(await codeOf(call(await contextFor(orgA.members.viewer), "captures.get", { sessionId: captureA }))).toBe("OK");
    expect(await codeOf(call(await contextFor(orgA.members.operator), "captures.stop", { sessionId: captureA }))).toBe("OK");
    expect(procedures.find(([p]) => p === "captures.delete")![1]._def.meta!.access).toBe("admin");
  });

  it("lists and uses only the caller's own organisation's image encoders", async () => {
    expect(await call(await contextFor(orgB.owner), "evaluation.imageEncoders", undefined)).toEqual([]);
    // Organisation A's model version named in a scoring of B's own dataset is not found.
    const datasetB = (await db.dataset.create({ data: { orgId: orgB.orgId, repoId: `org-b/probe-${orgB.orgId.slice(0, 8)}`, buildId: "b-probe" } })).id;
    expect(await codeOf(call(await contextFor(orgB.owner), "evaluation.start", { datasetId: datasetB, metrics: ["v"], imageEncoderVersionId: modelVersionA }))).toBe("NOT_FOUND");
  });
});

describe("route handler authorization", () => {
  const appDir = path.resolve("app");
  const routeFiles = (function walk(dir: string): string[] {
    return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name === "route.ts" ? [path.join(dir, e.name)] : []));
  })(appDir);
  const routes = routeFiles.map((f) => path.relative(appDir, path.dirname(f)).split(path.sep).join("/"));

  it("finds the route handlers", () => {
    expect(routes).toContain("api/jobs/[id]/events");
  });

  const guarded = routes.filter((r) => !PUBLIC_ROUTES[r]);
  const methods = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;
  type Handler = (req: Request, ctx: { params: Promise<Record<string, string>> }) => Promise<Response>;

  async function invoke(route: string, headers: Headers) {
    const mod = (await import(path.join(appDir, route, "route.ts"))) as Partial<Record<(typeof methods)[number], Handler>>;
    const params: Record<string, string> = {};
    for (const m of route.matchAll(/\[(\w+)\]/g)) params[m[1]] = jobA;
    const url = `http://localhost/${route.replace(/\[(\w+)\]/g, jobA)}`;
    const statuses: Record<string, number> = {};
    for (const method of methods) {
      const handler = mod[method];
      if (!handler) continue;
      const controller = new AbortController();
      // A change is sent as the portal's own pages send it (JSON, from its origin), so the
      // answer is about who may make it, not about where it came from.
      const sent = new Headers(headers);
      if (method !== "GET") {
        sent.set("origin", "http://localhost");
        sent.set("content-type", "application/json");
      }
      const response = await handler(new Request(url, { method, headers: sent, signal: controller.signal, ...(method === "GET" ? {} : { body: "{}" }) }), { params: Promise.resolve(params) });
      controller.abort();
      await response.body?.cancel().catch(() => {});
      statuses[method] = response.status;
    }
    return statuses;
  }

  it.each(guarded)("%s refuses anonymous callers with 401", async (route) => {
    const statuses = await invoke(route, new Headers());
    expect(Object.keys(statuses).length, `${route} exports no handler`).toBeGreaterThan(0);
    for (const [method, status] of Object.entries(statuses)) expect(status, `${method} /${route}`).toBe(401);
  });

  it.each(guarded)("%s refuses another organisation with 403 or 404", async (route) => {
    for (const [method, status] of Object.entries(await invoke(route, await sessionHeaders(orgB.owner)))) {
      if (!route.includes("[")) continue; // org-wide routes serve the caller's own organisation
      expect([403, 404], `${method} /${route}`).toContain(status);
    }
    for (const [method, status] of Object.entries(await invoke(route, await sessionHeaders(orgB.owner, orgA.orgId)))) {
      expect(status, `${method} /${route} asking for org A`).toBe(403);
    }
  });

  it("refuses a malformed, a revoked and an expired bearer token", async () => {
    expect((await invoke("api/events", new Headers({ authorization: "Bearer gty_nope" }))).GET).toBe(401);
    const { token, id } = await createApiToken(db, { actor: orgA.members.operator, input: { name: "soon revoked", scopes: ["read"] } });
    expect((await invoke("api/events", new Headers({ authorization: `Bearer ${token}` }))).GET).toBe(200);
    await db.apiToken.update({ where: { id }, data: { revokedAt: new Date() } });
    expect((await invoke("api/events", new Headers({ authorization: `Bearer ${token}` }))).GET).toBe(401);
    const expired = await createApiToken(db, { actor: orgA.members.operator, input: { name: "expired", scopes: ["read"] } });
    await db.apiToken.update({ where: { id: expired.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    expect((await invoke("api/events", new Headers({ authorization: `Bearer ${expired.token}` }))).GET).toBe(401);
  });
});

describe("API tokens", () => {
  it.each(procedures.filter(([, p]) => p._def.meta?.access === "authed").map(([n]) => n))("%s refuses API tokens: they act only inside their organisation", async (name) => {
    const { token } = await createApiToken(db, { actor: orgA.members.admin, input: { name: `probe ${name}`, scopes: ["admin"] } });
    const identity = await resolveRequestIdentity(db, new Headers({ authorization: `Bearer ${token}` }));
    expect(await codeOf(call({ ...identity, db, hub, baseUrl: "http://localhost" }, name, sampleInput(name)))).toBe("FORBIDDEN");
  });

  it("acts with the lower of its scopes and its owner's role", async () => {
    const { token } = await createApiToken(db, { actor: orgA.members.admin, input: { name: "read only", scopes: ["read"] } });
    const ctx = { ...(await resolveRequestIdentity(db, new Headers({ authorization: `Bearer ${token}` }))), db, hub, baseUrl: "http://localhost" };
    expect(await codeOf(call(ctx, "jobs.list", {}))).toBe("OK");
    expect(await codeOf(call(ctx, "system.startSelftest", { steps: 1, stepMs: 0 }))).toBe("FORBIDDEN");
  });
});
