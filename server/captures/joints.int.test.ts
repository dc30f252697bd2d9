import { afterAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { RealtimeHub } from "../jobs/realtime";
import { createCaptureInput } from "./captures.schemas";
import { jointStates, postJointState, thinJointStates } from "./joints.service";
import type { CaptureLimits } from "./limits";
import { createCaptureSession } from "./sessions.service";

// Posted joint angles reach a page's subscription through NOTIFY, from another connection (as
// from another web process), the newest first when the reader is slow.

const db = testDb();
const limits: CaptureLimits = { maxFrameBytes: 1024 * 1024, framesPerSecond: 1000, jointStatesPerSecond: 1000, maxSnapshotBytes: 16 * 1024 ** 2, maxSnapshots: 50, trainerSilentMs: 30_000 };
const hub = new RealtimeHub({ url: process.env.DATABASE_URL!, db, jobEvents: false });
afterAll(() => hub.stop());

describe("joint states for a page", () => {
  it("yields the latest at once (null before any), then each posted pose, and only this session's", async () => {
    const { owner: actor } = await createOrgWithMember(db, "owner");
    const other = await createOrgWithMember(db, "owner");
    const session = await createCaptureSession(db, { actor, input: createCaptureInput.parse({ name: "Bench" }), limits });
    const otherSession = await createCaptureSession(db, { actor: other.owner, input: createCaptureInput.parse({ name: "Theirs" }), limits });
    await hub.ensureConnected();
    const controller = new AbortController();
    const states = jointStates(db, { actor, sessionId: session.id, hub, signal: controller.signal });
    expect((await states.next()).value).toBeNull();
    await expect(jointStates(db, { actor: other.owner, sessionId: session.id, hub, signal: controller.signal }).next()).rejects.toThrow();

    const arrival = states.next();
    await postJointState(db, { actor: other.owner, sessionId: otherSession.id, input: { joint_angles: [9, 9, 9, 9, 9, 9] }, limits });
    await postJointState(db, { actor, sessionId: session.id, input: { joint_angles: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6] }, limits });
    const got = await arrival;
    expect(got.value).toMatchObject({ angles: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6] });

    // A reader that falls behind gets the newest pose, not every one in between.
    for (let i = 1; i <= 5; i++) await postJointState(db, { actor, sessionId: session.id, input: { joint_angles: [i, 0, 0, 0, 0, 0] }, limits });
    await new Promise((r) => setTimeout(r, 300));
    expect((await states.next()).value).toMatchObject({ angles: [5, 0, 0, 0, 0, 0] });
    controller.abort();
    await states.return(undefined);
  });
});

describe("thinning joint states", () => {
  it("keeps the earliest of each 100 ms for states stored over a minute ago, leaves the recent whole, and changes nothing when run again", async () => {
    const { owner: actor } = await createOrgWithMember(db, "owner");
    const session = await createCaptureSession(db, { actor, input: createCaptureInput.parse({ name: "Thinned" }), limits });
    const now = new Date();
    const old = new Date(now.getTime() - 5 * 60_000);
    // One second of a 30 Hz arm stored five minutes ago, and one second stored just now.
    const t0 = Math.floor(old.getTime() / 1000) * 1000;
    const rows = (base: number, createdAt: Date) => Array.from({ length: 30 }, (_, i) => ({ orgId: actor.orgId, sessionId: session.id, takenAt: new Date(base + Math.round((i * 1000) / 30)), angles: [i, 0, 0, 0, 0, 0], createdAt }));
    await db.captureJointState.createMany({ data: [...rows(t0, old), ...rows(t0 + 60_000 * 4, now)] });
    await thinJointStates(db, { now });
    const kept = await db.captureJointState.findMany({ where: { sessionId: session.id }, orderBy: { takenAt: "asc" } });
    const thinned = kept.filter((k) => k.createdAt.getTime() === old.getTime());
    expect(thinned.map((k) => k.takenAt.getTime() - t0)).toEqual([0, 100, 200, 300, 400, 500, 600, 700, 800, 900]);
    expect(kept.length - thinned.length).toBe(30);
    expect(await thinJointStates(db, { now })).toBe(0);
  });
});
