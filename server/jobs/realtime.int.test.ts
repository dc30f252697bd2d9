import { afterEach, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { selftestJob } from "./catalog";
import { enqueue } from "./enqueue";
import { createProgressReporter } from "./progress";
import { RealtimeHub } from "./realtime";
import { streamJobEvents } from "./stream";
import type { JobEventDto } from "./jobs.schemas";

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

function collect(stream: AsyncGenerator<JobEventDto>) {
  const seen: JobEventDto[] = [];
  const done = (async () => {
    for await (const e of stream) seen.push(e);
  })();
  return { seen, done };
}

describe("RealtimeHub", () => {
  it("loses nothing when its LISTEN connection is killed: it reconnects and re-reads", async () => {
    const { orgId, jobId, hub, progress } = await setup();
    const controller = new AbortController();
    const { seen, done } = collect(streamJobEvents({ db, hub, orgId, jobId, afterSeq: 0, signal: controller.signal, maxBuffered: 100 }));
    await waitFor(async () => seen.length >= 1, { what: "the replayed Queued event" });

    await db.$executeRaw`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()`;
    for (let i = 1; i <= 5; i++) await progress.set(i / 10, `written while reconnecting ${i}`);

    await waitFor(async () => seen.length >= 6, { what: "events written during the outage", timeoutMs: 20_000 });
    expect(seen.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    controller.abort();
    await done;
  });

  it("fans one batch read out to many subscribers", async () => {
    const { orgId, jobId, hub, progress } = await setup();
    const controller = new AbortController();
    const streams = Array.from({ length: 50 }, () => collect(streamJobEvents({ db, hub, orgId, jobId, afterSeq: 1, signal: controller.signal, maxBuffered: 100 })));
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

  it("closes a subscriber that falls too far behind instead of buffering without limit", async () => {
    const { orgId, jobId, hub, progress } = await setup();
    const controller = new AbortController();
    const stream = streamJobEvents({ db, hub, orgId, jobId, afterSeq: 0, signal: controller.signal, maxBuffered: 3 });
    await stream.next(); // replayed Queued event; then the consumer stalls
    for (let i = 0; i < 10; i++) await progress.log(`burst ${i}`);
    await new Promise((r) => setTimeout(r, 200));
    const drained: string[] = [];
    await expect(
      (async () => {
        for await (const e of stream) drained.push(e.message);
      })(),
    ).rejects.toMatchObject({ code: "RATE_LIMITED" });
    expect(drained.length).toBeLessThanOrEqual(3);
    controller.abort();
  });
});
