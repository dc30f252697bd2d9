import { afterAll, describe, expect, it } from "vitest";
import { GET as commandSamples } from "../../app/api/agents/commands/[commandId]/samples/route";
import { testDb } from "../../tests/helpers/db";
import { addMember, createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { sessionCookie } from "../../tests/helpers/session";
import type { OrgActor } from "../auth/roles";
import { endSessionsOf } from "../auth/sessions.service";
import { createApiToken, revokeApiToken } from "../auth/tokens.service";
import { createCaptureInput } from "../captures/captures.schemas";
import { postJointState } from "../captures/joints.service";
import type { CaptureLimits } from "../captures/limits";
import { createCaptureSession, deleteCaptureSession } from "../captures/sessions.service";
import { publishJointSamples } from "../hardware/agent-session.service";
import { JOINT_SAMPLES_CHANNEL } from "../hardware/hardware.schemas";
import type { JointSampleEvent } from "../hardware/joint-stream";
import { openJointSampleStream } from "../hardware/joint-stream";
import { createRobot, deleteRobot } from "../hardware/robots.service";
import { realtimeHub } from "../jobs/hub";
import { removeMember } from "../orgs/orgs.service";
import { createContext } from "./context";
import { createCaller } from "./root";

// Live streams with nothing to replay (joint readings) ask again, while open, whether their
// caller may still read them: a removed member, an ended session, a revoked token or a deleted
// arm ends them promptly and says why — through the event stream, and through the tRPC
// subscriptions the pages use.

const db = testDb();
const hub = realtimeHub();
const limits: CaptureLimits = { maxFrameBytes: 1024 * 1024, framesPerSecond: 1000, jointStatesPerSecond: 1000, maxSnapshotBytes: 16 * 1024 ** 2, maxSnapshots: 50, trainerSilentMs: 30_000 };
afterAll(() => hub.stop());

const sample = (t: number) => ({ t, raw: [2047, 2047, 2047, 2047, 2047, 2047], values: null });

/** A running joints.stream command on an agent of the organisation. */
async function runningStream(orgId: string, port = "/dev/ttyACM0") {
  const agent = await db.agent.create({ data: { orgId, name: `arm-pc-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}` } });
  const command = await db.agentCommand.create({ data: { orgId, agentId: agent.id, kind: "joints.stream", input: { port, protocol: "feetech" }, status: "running", sentAt: new Date(), deadline: new Date(Date.now() + 120_000), createdBy: "test" } });
  return { agent, command };
}

/** Opens GET /api/agents/commands/<id>/samples and reads it; `closed` resolves with all it said once it closes. */
async function openSamples(commandId: string, headers: Record<string, string>) {
  const controller = new AbortController();
  const res = await commandSamples(new Request(`http://localhost/api/agents/commands/${commandId}/samples`, { headers, signal: controller.signal }), { params: Promise.resolve({ commandId }) });
  expect(res.status).toBe(200);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes(": connected")) text += (await reader.read()).value ?? "";
  const closed = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text;
      text += value;
    }
  })();
  return { closed, text: () => text, stop: () => controller.abort() };
}

/** Resolves with `p`, or fails if it takes more than a few seconds (the periodic check is 5 s; a change is acted on at once). */
async function promptly<T>(p: Promise<T>, what: string, ms = 4000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} was still open ${ms} ms after access ended`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitForText(stream: { text: () => string }, needle: string) {
  for (let i = 0; i < 100 && !stream.text().includes(needle); i++) await new Promise((r) => setTimeout(r, 50));
  expect(stream.text()).toContain(needle);
}

describe("GET /api/agents/commands/<id>/samples while access ends", () => {
  it("ends when the member is removed, after passing on the batches they could see", async () => {
    const { orgId, owner } = await createOrgWithMember(db, "owner");
    const viewer = await addMember(db, orgId, "viewer");
    const { command } = await runningStream(orgId);
    // Open (": connected") once it listens: what is published now reaches it.
    const stream = await openSamples(command.id, { cookie: await sessionCookie(db, viewer.userId) });
    await publishJointSamples(db, command.id, [sample(1)]);
    await waitForText(stream, '"t":1');
    await removeMember(db, { actor: owner, userId: viewer.userId });
    const said = await promptly(stream.closed, "The joint stream");
    expect(said).toMatch(/event: error\ndata: .*"code":"FORBIDDEN".*Live joints stopped: .* is no longer a member of this organisation/);
  });

  it("ends when the API token is revoked, and when the session signs out", async () => {
    const { orgId, owner } = await createOrgWithMember(db, "owner");
    const { command } = await runningStream(orgId);
    const { id, token } = await createApiToken(db, { actor: owner, input: { name: "plotter", scopes: ["read"] } });
    const byToken = await openSamples(command.id, { authorization: `Bearer ${token}` });
    const byBrowser = await openSamples(command.id, { cookie: await sessionCookie(db, owner.userId) });
    await revokeApiToken(db, { actor: owner, tokenId: id });
    expect(await promptly(byToken.closed, "The token's joint stream")).toMatch(/Live joints stopped: the API token was revoked/);
    // The browser's stream, on the same person's session, is still open.
    expect(await Promise.race([byBrowser.closed.then(() => "closed"), new Promise((r) => setTimeout(() => r("open"), 500))])).toBe("open");
    await endSessionsOf(db, { userId: owner.userId });
    expect(await promptly(byBrowser.closed, "The browser's joint stream")).toMatch(/Live joints stopped: your session has ended/);
  });
});

describe("hardware.onJointSamples while access ends or the arm goes", () => {
  it("ends when the member is removed (the page's tRPC subscription)", async () => {
    const { orgId, owner } = await createOrgWithMember(db, "owner");
    const operator = await addMember(db, orgId, "operator");
    const { command } = await runningStream(orgId);
    const ctx = await createContext(new Headers({ cookie: await sessionCookie(db, operator.userId), "x-gantry-org": orgId }));
    const controller = new AbortController();
    const events = (await createCaller(ctx, { signal: controller.signal }).hardware.onJointSamples({ commandId: command.id })) as AsyncIterable<JointSampleEvent>;
    const iterator = events[Symbol.asyncIterator]();
    // The subscription opens its stream on the first read: published once that stream listens.
    const listeners = hub.listenerCount(JOINT_SAMPLES_CHANNEL);
    const first = iterator.next();
    await waitFor(async () => hub.listenerCount(JOINT_SAMPLES_CHANNEL) > listeners, { what: "the subscription to listen" });
    await hub.ensureConnected();
    await publishJointSamples(db, command.id, [sample(7)]);
    expect((await first).value).toMatchObject({ type: "samples", samples: [{ t: 7 }] });
    // Watched before the removal: the stream may end while removeMember is still returning.
    const ended = expect(promptly(iterator.next(), "The subscription")).rejects.toThrow(/Live joints stopped: .* is no longer a member of this organisation/);
    await removeMember(db, { actor: owner, userId: operator.userId });
    await ended;
    controller.abort();
  });

  it("ends with the reason when the arm is removed: its live readings are cancelled", async () => {
    const { owner } = await createOrgWithMember(db, "owner");
    const { agent, command } = await runningStream(owner.orgId, "/dev/serial/by-id/usb-1a86_USB_Single_Serial_5A7A-if00");
    const robot = await createRobot(db, { actor: owner, input: { agentId: agent.id, name: `arm_${Date.now()}`, type: "so101_follower", port: "/dev/serial/by-id/usb-1a86_USB_Single_Serial_5A7A-if00" } });
    const other = await db.agentCommand.create({ data: { orgId: owner.orgId, agentId: agent.id, kind: "joints.stream", input: { port: "/dev/ttyUSB1", protocol: "feetech" }, status: "running", deadline: new Date(Date.now() + 60_000), createdBy: "test" } });
    const controller = new AbortController();
    const events = await openJointSampleStream(db, { actor: owner, commandId: command.id, hub, signal: controller.signal });
    const seen: JointSampleEvent[] = [];
    const reading = (async () => {
      for await (const e of events) seen.push(e);
    })();
    await new Promise((r) => setTimeout(r, 200));
    await deleteRobot(db, { actor: owner, robotId: robot.id });
    await promptly(reading, "The arm's joint stream");
    expect(seen.at(-1)).toMatchObject({ type: "ended", status: "cancelled", error: `Stopped: the arm ${robot.name} was removed by ${owner.label}` });
    // Another port's stream on the same agent goes on.
    expect((await db.agentCommand.findUniqueOrThrow({ where: { id: other.id } })).status).toBe("running");
    controller.abort();
  });

  it("asks again every few seconds even when no change is announced", async () => {
    const { owner } = await createOrgWithMember(db, "owner");
    const { command } = await runningStream(owner.orgId);
    let asked = 0;
    const controller = new AbortController();
    // The first answer (once listening) allows; the next, a moment later, does not.
    const events = await openJointSampleStream(db, {
      actor: owner, commandId: command.id, hub, signal: controller.signal, accessEveryMs: 300,
      whyNotAllowed: async () => (asked++ === 0 ? null : "gone"), watchAccess: () => () => {},
    });
    await expect(promptly(events.next(), "The unannounced joint stream")).rejects.toThrow(/Live joints stopped: gone/);
    expect(asked).toBe(2);
    controller.abort();
  });
});

describe("captures.onJoints while access ends or the session goes", () => {
  async function subscribe(actor: OrgActor, sessionId: string) {
    const ctx = await createContext(new Headers({ cookie: await sessionCookie(db, actor.userId), "x-gantry-org": actor.orgId }));
    const controller = new AbortController();
    const events = (await createCaller(ctx, { signal: controller.signal }).captures.onJoints({ sessionId })) as AsyncIterable<unknown>;
    return { iterator: events[Symbol.asyncIterator](), stop: () => controller.abort() };
  }

  it("ends when the member is removed", async () => {
    const { orgId, owner } = await createOrgWithMember(db, "owner");
    const viewer = await addMember(db, orgId, "viewer");
    const session = await createCaptureSession(db, { actor: owner, input: createCaptureInput.parse({ name: "Bench" }), limits });
    const { iterator, stop } = await subscribe(viewer, session.id);
    expect((await iterator.next()).value).toBeNull();
    const arrival = iterator.next();
    await postJointState(db, { actor: owner, sessionId: session.id, input: { joint_angles: [1, 2, 3, 4, 5, 6] }, limits });
    expect((await arrival).value).toMatchObject({ angles: [1, 2, 3, 4, 5, 6] });
    const ended = expect(promptly(iterator.next(), "The twin's joints")).rejects.toThrow(/The twin's joints stopped: .* is no longer a member of this organisation/);
    await removeMember(db, { actor: owner, userId: viewer.userId });
    await ended;
    stop();
  });

  it("ends when the session is deleted", async () => {
    const { owner } = await createOrgWithMember(db, "owner");
    const session = await createCaptureSession(db, { actor: owner, input: createCaptureInput.parse({ name: "Short-lived" }), limits });
    const { iterator, stop } = await subscribe(owner, session.id);
    expect((await iterator.next()).value).toBeNull();
    const ended = expect(promptly(iterator.next(), "The deleted session's joints")).rejects.toThrow(/capture session "Short-lived" was deleted/);
    await deleteCaptureSession(db, { actor: owner, sessionId: session.id });
    await ended;
    stop();
  });
});
