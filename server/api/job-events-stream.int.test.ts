import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GET as jobEvents } from "../../app/api/jobs/[id]/events/route";
import { GET as orgEvents } from "../../app/api/events/route";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { createApiToken } from "../auth/tokens.service";
import { selftestJob } from "../jobs/catalog";
import { enqueue } from "../jobs/enqueue";
import { appendJobEvent, createProgressReporter } from "../jobs/progress";
import { realtimeHub } from "../jobs/hub";
import type { OrgActor } from "../auth/roles";

// The SSE route handlers, called as Next calls them, read as a browser's EventSource would.

const db = testDb();
let actor: OrgActor;
let token: string;

beforeAll(async () => {
  actor = (await createOrgWithMember(db, "operator")).actor;
  token = (await createApiToken(db, { actor, input: { name: "sse", scopes: ["read"] } })).token;
});
afterAll(() => realtimeHub().stop());

/** A job that never runs (no worker here): the test writes its progress itself. */
async function makeJob() {
  return db.$transaction((tx) => enqueue(selftestJob, { steps: 1, stepMs: 0 }, { tx, orgId: actor.orgId, runAt: new Date(Date.now() + 3_600_000) }));
}

interface SseEvent { id?: string; event?: string; data: string }

/** Parses a text/event-stream body into events as they arrive. */
async function* readEvents(response: Response): AsyncGenerator<SseEvent> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event: SseEvent = { data: "" };
      for (const line of block.split("\n")) {
        if (line.startsWith("id: ")) event.id = line.slice(4);
        else if (line.startsWith("event: ")) event.event = line.slice(7);
        else if (line.startsWith("data: ")) event.data += line.slice(6);
      }
      if (event.event) yield event;
    }
  }
}

async function take(events: AsyncGenerator<SseEvent>, n: number): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  while (out.length < n) {
    const next = await events.next();
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

function open(jobId: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const request = new Request(`http://localhost/api/jobs/${jobId}/events`, { headers: { authorization: `Bearer ${token}`, ...headers }, signal: controller.signal });
  return { controller, response: jobEvents(request, { params: Promise.resolve({ id: jobId }) }) };
}

describe("GET /api/jobs/{id}/events", () => {
  it("replays the log, then streams live progress in order", async () => {
    const { jobId } = await makeJob();
    const { controller, response } = open(jobId);
    const res = await response;
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const events = readEvents(res);
    const [queued] = await take(events, 1);
    expect(queued).toMatchObject({ id: "1", event: "job" });
    expect(JSON.parse(queued.data)).toMatchObject({ status: "queued", message: "Queued" });

    const progress = createProgressReporter(db, { id: jobId, orgId: actor.orgId });
    await progress.step("Encoding camera top", 0.4);
    await progress.set(0.5, "Halfway");
    const live = await take(events, 2);
    expect(live.map((e) => e.id)).toEqual(["2", "3"]);
    expect(live.map((e) => JSON.parse(e.data).message)).toEqual(["Encoding camera top", "Halfway"]);
    expect(JSON.parse(live[1].data).progress).toBe(0.5);
    controller.abort();
  });

  it("resumes after Last-Event-ID without repeating or skipping", async () => {
    const { jobId } = await makeJob();
    const progress = createProgressReporter(db, { id: jobId, orgId: actor.orgId });
    for (let i = 1; i <= 5; i++) await progress.set(i / 10, `event ${i}`);
    const { controller, response } = open(jobId, { "last-event-id": "3" });
    const got = await take(readEvents(await response), 3);
    expect(got.map((e) => e.id)).toEqual(["4", "5", "6"]);
    controller.abort();

    // An id no event of the stream has is refused up front, not ignored or failed mid-stream.
    for (const id of ["99999999999", "abc"]) {
      const refused = await open(jobId, { "last-event-id": id }).response;
      expect(refused.status, id).toBe(400);
      expect((await refused.json()).error.message).toMatch(/^Last-Event-ID must be .*; reconnect without it to start afresh$/);
    }
    const orgRefused = await orgEvents(new Request("http://localhost/api/events?lastEventId=3000000000", { headers: { authorization: `Bearer ${token}` } }));
    expect(orgRefused.status).toBe(400);
    expect((await orgRefused.json()).error.message).toMatch(/at most 2147483647/);
  });

  it("closes the stream when the client goes away", async () => {
    const { jobId } = await makeJob();
    const before = realtimeHub().subscriberCount;
    const { controller, response } = open(jobId);
    const events = readEvents(await response);
    await take(events, 1);
    expect(realtimeHub().subscriberCount).toBe(before + 1);
    controller.abort();
    await expect(events.next()).resolves.toMatchObject({ done: true });
    await new Promise((r) => setTimeout(r, 50));
    expect(realtimeHub().subscriberCount).toBe(before);
  });

  it("sends heartbeats while nothing happens", async () => {
    // The test settings beat every 500 ms (tests/setup/test-env.ts).
    const { jobId } = await makeJob();
    const { controller, response } = open(jobId);
    const reader = (await response).body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const deadline = Date.now() + 5000;
    while (!text.includes(": heartbeat") && Date.now() < deadline) text += (await reader.read()).value ?? "";
    expect(text).toContain(": heartbeat");
    controller.abort();
  });

  it("ends after the job's final event, so `curl -N` returns once the job has finished", async () => {
    const { jobId } = await makeJob();
    const { controller, response } = open(jobId);
    const events = readEvents(await response);
    await take(events, 1);
    const progress = createProgressReporter(db, { id: jobId, orgId: actor.orgId });
    await progress.step("Encoding camera top", 0.4);
    await appendJobEvent(db, { jobId, orgId: actor.orgId, message: "Finished", status: "succeeded", progress: 1 });
    const rest: SseEvent[] = [];
    for await (const e of events) rest.push(e);
    expect(rest.map((e) => [e.event, e.id])).toEqual([["job", "2"], ["job", "3"], ["end", undefined]]);
    expect(JSON.parse(rest[1].data)).toMatchObject({ status: "succeeded", message: "Finished" });
    controller.abort();
  });

  it("replays a finished job to its end and closes; asked again after its last event, closes at once", async () => {
    const { jobId } = await makeJob();
    await appendJobEvent(db, { jobId, orgId: actor.orgId, message: "Failed: no camera", status: "failed", level: "error" });
    const all: SseEvent[] = [];
    for await (const e of readEvents(await open(jobId).response)) all.push(e);
    expect(all.map((e) => e.event)).toEqual(["job", "job", "end"]);
    const again: SseEvent[] = [];
    for await (const e of readEvents(await open(jobId, { "last-event-id": "2" }).response)) again.push(e);
    expect(again.map((e) => e.event)).toEqual(["end"]);
  });

  it("does not end at a failure that a retry followed", async () => {
    const { jobId } = await makeJob();
    await appendJobEvent(db, { jobId, orgId: actor.orgId, message: "Failed: no camera", status: "failed", level: "error" });
    await appendJobEvent(db, { jobId, orgId: actor.orgId, message: "Retried", status: "queued", progress: 0, reopens: true });
    const { controller, response } = open(jobId);
    const events = readEvents(await response);
    expect((await take(events, 3)).map((e) => JSON.parse(e.data).message)).toEqual(["Queued", "Failed: no camera", "Retried"]);
    await appendJobEvent(db, { jobId, orgId: actor.orgId, message: "Finished", status: "succeeded", progress: 1 });
    expect((await take(events, 2)).map((e) => e.event)).toEqual(["job", "end"]);
    controller.abort();
  });

  it("answers a malformed id with 400 and an unknown one with 404", async () => {
    const bad = await jobEvents(new Request("http://localhost/api/jobs/nope/events", { headers: { authorization: `Bearer ${token}` } }), { params: Promise.resolve({ id: "nope" }) });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.message).toMatch(/not a valid id/);
    const unknown = await jobEvents(new Request("http://localhost/x", { headers: { authorization: `Bearer ${token}` } }), { params: Promise.resolve({ id: crypto.randomUUID() }) });
    expect(unknown.status).toBe(404);
  });
});

describe("GET /api/events", () => {
  it("streams every job of the organisation, resumable by event id", async () => {
    const controller = new AbortController();
    const res = await orgEvents(new Request("http://localhost/api/events", { headers: { authorization: `Bearer ${token}` }, signal: controller.signal }));
    const events = readEvents(res);
    const a = await makeJob();
    const b = await makeJob();
    const got = await take(events, 2);
    expect(got.map((e) => JSON.parse(e.data).jobId).sort()).toEqual([a.jobId, b.jobId].sort());
    controller.abort();

    const resumed = new AbortController();
    const again = await orgEvents(new Request("http://localhost/api/events", { headers: { authorization: `Bearer ${token}`, "last-event-id": got[0].id! }, signal: resumed.signal }));
    const [next] = await take(readEvents(again), 1);
    expect(next.id).toBe(got[1].id);
    resumed.abort();
  });

  it("writes events committed together in one go, not one write each, in order", async () => {
    const controller = new AbortController();
    const res = await orgEvents(new Request("http://localhost/api/events", { headers: { authorization: `Bearer ${token}` }, signal: controller.signal }));
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    expect((await reader.read()).value).toContain(": connected");
    // 20 jobs queued in one transaction: their notifications arrive together.
    await db.$transaction(async (tx) => {
      for (let i = 0; i < 20; i++) await enqueue(selftestJob, { steps: 1, stepMs: 0 }, { tx, orgId: actor.orgId, runAt: new Date(Date.now() + 3_600_000) });
    });
    const writes: string[] = [];
    let ids: number[] = [];
    while (ids.length < 20) {
      const { value } = await reader.read();
      writes.push(value!);
      ids = [...writes.join("").matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    }
    expect(ids).toHaveLength(20);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(writes.length).toBeLessThanOrEqual(2);
    controller.abort();
  });
});
