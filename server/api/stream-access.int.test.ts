import { afterAll, describe, expect, it } from "vitest";
import { GET as orgEvents } from "../../app/api/events/route";
import { testDb } from "../../tests/helpers/db";
import { addMember, createOrgWithMember } from "../../tests/helpers/factories";
import { sessionCookie } from "../../tests/helpers/session";
import { createApiToken, revokeApiToken } from "../auth/tokens.service";
import { endSessionsOf } from "../auth/sessions.service";
import { realtimeHub } from "../jobs/hub";
import { openOrgEventStream } from "../jobs/stream";
import { removeMember } from "../orgs/orgs.service";

// An open /api/events stream ends as soon as its caller loses access — a revoked token, a
// removed member, a signed-out session — not at the next periodic check, 30 s later.

const db = testDb();
afterAll(() => realtimeHub().stop());

/** Opens the stream and reads it; resolves with what it said last once it closes. */
async function openStream(headers: Record<string, string>) {
  const controller = new AbortController();
  const res = await orgEvents(new Request("http://localhost/api/events", { headers, signal: controller.signal }));
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
  return { closed, stop: () => controller.abort() };
}

/** What the stream said before it closed, or a failure if it is still open well before the 30 s check. */
async function endsPromptly(stream: { closed: Promise<string>; stop: () => void }): Promise<string> {
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("The stream was still open 10 s after access ended")), 10_000));
  try {
    return await Promise.race([stream.closed, timeout]);
  } finally {
    stream.stop();
  }
}

describe("GET /api/events after access ends", () => {
  it("ends at once when the API token is revoked", async () => {
    const { actor } = await createOrgWithMember(db, "operator");
    const { id, token } = await createApiToken(db, { actor, input: { name: "watcher", scopes: ["read"] } });
    const stream = await openStream({ authorization: `Bearer ${token}` });
    await revokeApiToken(db, { actor, tokenId: id });
    expect(await endsPromptly(stream)).toMatch(/event: error\ndata: .*These events stopped: the API token was revoked: make a new one under Settings → API tokens/);
  });

  it("ends at once when the member is removed", async () => {
    const { orgId, owner } = await createOrgWithMember(db, "owner");
    const viewer = await addMember(db, orgId, "viewer");
    const stream = await openStream({ cookie: await sessionCookie(db, viewer.userId) });
    await removeMember(db, { actor: owner, userId: viewer.userId });
    expect(await endsPromptly(stream)).toMatch(/These events stopped: .* is no longer a member of this organisation/);
  });

  it("ends at once when the session is signed out elsewhere, and leaves others' streams open", async () => {
    const { orgId, owner } = await createOrgWithMember(db, "owner");
    const colleague = await addMember(db, orgId, "viewer");
    const mine = await openStream({ cookie: await sessionCookie(db, owner.userId) });
    const theirs = await openStream({ cookie: await sessionCookie(db, colleague.userId) });
    await endSessionsOf(db, { userId: owner.userId });
    expect(await endsPromptly(mine)).toMatch(/These events stopped: your session has ended \(signed out, or signed out everywhere\): sign in again/);
    const stillOpen = await Promise.race([theirs.closed.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 500))]);
    expect(stillOpen).toBe(true);
    theirs.stop();
  });

  it("checks again once it listens, so access lost between authentication and then is not missed", async () => {
    const { orgId } = await createOrgWithMember(db, "viewer");
    const controller = new AbortController();
    // No change is ever announced: only the check made once listening can end this stream.
    const events = await openOrgEventStream({
      db, hub: realtimeHub(), orgId, afterOrgSeq: null, signal: controller.signal, maxBuffered: 100,
      whyNotAllowed: async () => "you were removed", watchAccess: () => () => {},
    });
    const timeout = setTimeout(() => controller.abort(), 10_000);
    try {
      await expect(events.next()).rejects.toThrow("These events stopped: you were removed");
      expect(controller.signal.aborted).toBe(false);
    } finally {
      clearTimeout(timeout);
    }
  });
});
