import { afterEach, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { selftestJob } from "./catalog";
import { enqueue } from "./enqueue";
import { createProgressReporter } from "./progress";
import { RealtimeHub } from "./realtime";
import { openJobEventStream, openOrgEventBatches, openOrgEventStream } from "./stream";
import { appendJobEvent } from "./progress";
import type { JobEventDto } from "./jobs.schemas";
import { toJobEventDto } from "./jobs.queries";

const db = testDb();
const hubs: RealtimeHub[] = [];
afterEach(async () => {
  await Promise.all(hubs.splice(0).map((h) => h.stop()));
});

async function setup() {
  const { actor } = await createOrgWithMember(db, "operator");
  const { jobId } = await db.$transaction((tx) => enqueue(selftestJob, { steps: 1, stepMs: 0 }, { tx, orgId: actor.orgId, runAt: new Date(Date.now() + 3_600_000) }));
  const hub = new RealtimeHub({ url: process.env.DATABASE_URL!, db });
  hubs.push(hub);
  return { orgId: actor.orgId, jobId, hub, progress: createProgressReporter(db, { id: jobId, orgId: actor.orgId }) };
}

function collect(opened: Promise<AsyncGenerator<JobEventDto>>) {
  const seen: JobEventDto[] = [];
  const done = (async () => {
    for await (const e of await opened) seen.push(e);
  })();
  return { seen, done };
}

describe("RealtimeHub", () => {
  it("loses nothing when its LISTEN connection is killed: it reconnects and re-reads", async () => {
    const { orgId, jobId, hub, progress } = await setup();
    const controller = new AbortController();
    const { seen, done } = collect(openJobEventStream({ db, hub, orgId, jobId, afterSeq: 0, signal: controller.signal, maxBuffered: 100 }));
    await waitFor(async () => seen.length >= 1, { what: "the replayed Queued event" });

    const killed = await db.$queryRaw<{ n: bigint }[]>`SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN gantry_job_events%' AND pid <> pg_backend_pid()`;
    expect(killed[0].n).toBeGreaterThanOrEqual(1n);
    for (let i = 1; i <= 5; i++) await progress.set(i / 10, `written while reconnecting ${i}`);

    await waitFor(async () => seen.length >= 6, { what: "events written during the outage", timeoutMs: 20_000 });
    expect(seen.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    controller.abort();
    await done;
  });

  it("fans one batch read out to many subscribers", async () => {
    const { orgId, jobId, hub, progress } = await setup();
    const controller = new AbortController();
    const streams = Array.from({ length: 50 }, () => collect(openJobEventStream({ db, hub, orgId, jobId, afterSeq: 1, signal: controller.signal, maxBuffered: 100 })));
    await hub.ensureConnected();
    await waitFor(async () => hub.subscriberCount >= 50, { what: "subscribers" });
    await progress.step("Warm-up", 0.1);
    await progress.step("Upload", 0.6);
    await waitFor(async () => streams.every((s) => s.seen.length === 2), { what: "every subscriber to see both events" });
    expect(new Set(streams.map((s) => s.seen.map((e) => e.message).join()))).toEqual(new Set(["Warm-up,Upload"]));
    controller.abort();
    await Promise.all(streams.map((s) => s.done));
    expect(hub.subscriberCount).toBe(0);
  });

  it("lets a slow subscriber fall behind without buffering, then catches it up from the database", async () => {
    const { orgId, jobId, hub, progress } = await setup();
    const controller = new AbortController();
    const stream = await openJobEventStream({ db, hub, orgId, jobId, afterSeq: 0, signal: controller.signal, maxBuffered: 3 });
    await stream.next(); // the replayed Queued event; then the consumer stalls
    for (let i = 0; i < 10; i++) await progress.log(`burst ${i}`);
    await new Promise((r) => setTimeout(r, 300));
    const got: string[] = [];
    for await (const e of stream) {
      got.push(e.message);
      if (got.length === 10) break;
    }
    expect(got).toEqual(Array.from({ length: 10 }, (_, i) => `burst ${i}`));
    controller.abort();
  });

  it("delivers an organisation's events in commit order, even when ids were taken out of order", async () => {
    const { orgId, jobId, hub } = await setup();
    const controller = new AbortController();
    const { seen, done } = collect(openOrgEventStream({ db, hub, orgId, afterOrgSeq: null, signal: controller.signal, maxBuffered: 100 }));
    await hub.ensureConnected();
    await waitFor(async () => hub.subscriberCount >= 1, { what: "the subscriber" });
    // A long transaction takes its event first but commits after a quick one.
    let release!: () => void;
    let appended!: () => void;
    const slowAppended = new Promise<void>((r) => (appended = r));
    const slow = db.$transaction(async (tx) => {
      await appendJobEvent(tx, { jobId, orgId, message: "slow, first to start" });
      appended();
      await new Promise<void>((r) => (release = r));
    });
    await slowAppended;
    const quick = appendJobEvent(db, { jobId, orgId, message: "quick, waits for the slow one" });
    // Released once the quick one waits for the job's row, which the slow one holds.
    await waitFor(async () => (await db.$queryRaw<Array<{ n: number }>>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() AND query LIKE '%"lastSeq" = "lastSeq" + 1%'`)[0].n > 0, { what: "the quick event to wait for the slow one" });
    release();
    await Promise.all([slow, quick]);
    await waitFor(async () => seen.length >= 2, { what: "both events" });
    expect(seen.map((e) => e.message)).toEqual(["slow, first to start", "quick, waits for the slow one"]);
    expect(seen.map((e) => e.orgSeq)).toEqual([seen[0].orgSeq, seen[0].orgSeq + 1]);
    controller.abort();
    await done;
  });

  it("hands on events from their notifications as the database would read them, and reads the ones too long to travel, in order", async () => {
    const { orgId, jobId, hub, progress } = await setup();
    const controller = new AbortController();
    const { seen, done } = collect(openOrgEventStream({ db, hub, orgId, afterOrgSeq: null, signal: controller.signal, maxBuffered: 100 }));
    await hub.ensureConnected();
    await waitFor(async () => hub.subscriberCount >= 1, { what: "the subscriber" });
    const long = "é".repeat(3990); // 7 980 bytes: more than a notification carries beside the rest
    await progress.step("Upload «camera top»", 1 / 3);
    await progress.log(long, "warn");
    await progress.set(2 / 3, 'quotes " and \\ backslashes, a tab\t and a newline\n');
    await progress.log(long.slice(0, 10));
    // An event written without a notification, then announced with one whose event this process
    // cannot take (as from a process of another version): it is read by its ids.
    const [row] = await db.$queryRaw<{ id: bigint }[]>`
      WITH org AS (UPDATE "Org" SET "lastEventSeq" = "lastEventSeq" + 1 WHERE "id" = ${orgId}::uuid RETURNING "lastEventSeq"),
        job AS (UPDATE "Job" SET "lastSeq" = "lastSeq" + 1 WHERE "id" = ${jobId}::uuid RETURNING "lastSeq")
      INSERT INTO "JobEvent" ("jobId", "orgId", "seq", "orgSeq", "at", "level", "message")
      SELECT ${jobId}::uuid, ${orgId}::uuid, job."lastSeq", org."lastEventSeq", now() AT TIME ZONE 'UTC', 'info', 'announced oddly' FROM org, job
      RETURNING "id"`;
    await db.$executeRaw`SELECT pg_notify('gantry_job_events', ${JSON.stringify({ jobId, orgId, id: row.id.toString(), event: { seq: "five", shape: "new" } })})`;
    // Live, not only when a later event's gap sends the stream to the database.
    await waitFor(async () => seen.length >= 5, { what: "the first five events, the last announced oddly" });
    await appendJobEvent(db, { jobId, orgId, message: "Finished", status: "succeeded", progress: 1 });
    await waitFor(async () => seen.length >= 6, { what: "all six events" });
    expect(seen[4].message).toBe("announced oddly");
    const stored = await db.jobEvent.findMany({ where: { jobId, seq: { gt: 1 } }, orderBy: { seq: "asc" } });
    expect(seen).toEqual(stored.map(toJobEventDto));
    expect(seen[1].message).toBe(long);
    // The same bytes on the wire as a stream replayed from the database would send.
    expect(seen.map((e) => JSON.stringify(e))).toEqual(stored.map((row) => JSON.stringify(toJobEventDto(row))));
    controller.abort();
    await done;
  });

  it("catches a subscriber of the organisation that fell behind up from the events it read lately, and from the database when they do not reach back", async () => {
    const { orgId, hub, progress } = await setup();
    const controller = new AbortController();
    // A subscriber that keeps up, and one that stalls after its first event.
    const live = collect(openOrgEventStream({ db, hub, orgId, afterOrgSeq: null, signal: controller.signal, maxBuffered: 100 }));
    const slow = await openOrgEventBatches({ db, hub, orgId, afterOrgSeq: null, signal: controller.signal, maxBuffered: 3 });
    await hub.ensureConnected();
    await waitFor(async () => hub.subscriberCount >= 1, { what: "the live subscriber" });
    await progress.log("first");
    const [first] = (await slow.next()).value as JobEventDto[];
    expect(hub.subscriberCount).toBe(2);
    for (let i = 0; i < 10; i++) await progress.log(`burst ${i}`);
    await waitFor(async () => live.seen.length === 11, { what: "the live subscriber to see every event" });
    // It overflowed (3 kept at most): the rest comes from what the hub read, the very events the
    // live subscriber was handed (a database read would make new ones).
    const caughtUp: JobEventDto[] = [];
    while (caughtUp.length < 10) caughtUp.push(...((await slow.next()).value as JobEventDto[]));
    expect(caughtUp.map((e) => e.message)).toEqual(Array.from({ length: 10 }, (_, i) => `burst ${i}`));
    caughtUp.forEach((e, i) => expect(e).toBe(live.seen[i + 1]));

    // What the hub kept: from the first event it read while followed; none before it; nothing after the last.
    expect(hub.recentOrgEvents(orgId, first.orgSeq - 1, 100)?.map((e) => e.message)).toEqual(live.seen.map((e) => e.message));
    expect(hub.recentOrgEvents(orgId, first.orgSeq + 9, 1)?.map((e) => e.message)).toEqual(["burst 9"]);
    expect(hub.recentOrgEvents(orgId, live.seen[10].orgSeq, 100)).toEqual([]);
    expect(hub.recentOrgEvents(orgId, first.orgSeq - 2, 100)).toBeNull();
    // After a reconnect (events may have been missed meanwhile) it keeps nothing it had.
    await db.$queryRaw`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN gantry_job_events%' AND pid <> pg_backend_pid()`;
    await waitFor(async () => !hub.isListening || hub.recentOrgEvents(orgId, first.orgSeq - 1, 1) === null, { what: "the hub to notice the lost connection" });
    await waitFor(async () => hub.isListening, { what: "the hub to reconnect", timeoutMs: 20_000 });
    expect(hub.recentOrgEvents(orgId, first.orgSeq - 1, 100)).toBeNull();
    // A stream resumed from an event the hub no longer keeps reads the database: every event, in order.
    const resumed = await openOrgEventStream({ db, hub, orgId, afterOrgSeq: first.orgSeq - 1, signal: controller.signal, maxBuffered: 100 });
    const replayed: string[] = [];
    for await (const e of resumed) {
      replayed.push(e.message);
      if (replayed.length === 11) break;
    }
    expect(replayed).toEqual(live.seen.map((e) => e.message));
    controller.abort();
    await live.done;
  });
});
