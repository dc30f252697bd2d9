import { describe, expect, it } from "vitest";
import type { JointSample } from "../server/hardware/hardware.schemas";
import { SampleBatcher } from "./sample-batcher";

const sample = (t: number): JointSample => ({ t, raw: [t], values: null });

/** A portal whose answers the test releases by hand. */
function slowPortal() {
  const batches: number[][] = [];
  const pending: (() => void)[] = [];
  const send = (samples: JointSample[]) => {
    batches.push(samples.map((s) => s.t));
    return new Promise<void>((resolve) => pending.push(resolve));
  };
  const answer = () => pending.splice(0).forEach((resolve) => resolve());
  return { batches, send, answer, inFlight: () => pending.length };
}

describe("SampleBatcher", () => {
  it("sends one batch at a time, at most perMessage samples each, and the rest when closed", async () => {
    const portal = slowPortal();
    const batcher = new SampleBatcher(portal.send, { everyMs: 5, perMessage: 4, buffered: 100 });
    for (let t = 0; t < 10; t++) batcher.push(sample(t));
    await new Promise((r) => setTimeout(r, 20));
    // The first batch is still waiting for the portal: nothing else went out.
    expect(portal.batches).toEqual([[0, 1, 2, 3]]);
    expect(portal.inFlight()).toBe(1);
    const closing = batcher.close(2000);
    for (let i = 0; i < 5 && portal.batches.length < 3; i++) {
      portal.answer();
      await new Promise((r) => setTimeout(r, 10));
    }
    portal.answer();
    await closing;
    expect(portal.batches).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    batcher.push(sample(99));
    await new Promise((r) => setTimeout(r, 20));
    expect(portal.batches).toHaveLength(3);
  });

  it("drops the oldest samples while the portal is slow, keeping the newest", async () => {
    const portal = slowPortal();
    const batcher = new SampleBatcher(portal.send, { everyMs: 1, perMessage: 64, buffered: 8 });
    batcher.push(sample(0));
    await new Promise((r) => setTimeout(r, 10));
    for (let t = 1; t <= 100; t++) batcher.push(sample(t));
    expect(batcher.dropped).toBe(92);
    portal.answer();
    await new Promise((r) => setTimeout(r, 20));
    expect(portal.batches).toEqual([[0], [93, 94, 95, 96, 97, 98, 99, 100]]);
    portal.answer();
    await batcher.close(100);
  });

  it("goes on after a batch the portal refused, and gives up on a portal that never answers when closed", async () => {
    let calls = 0;
    const batcher = new SampleBatcher(async () => {
      calls++;
      if (calls === 1) throw new Error("HTTP 503");
    }, { everyMs: 1, perMessage: 1, buffered: 10 });
    batcher.push(sample(1));
    batcher.push(sample(2));
    await batcher.close(1000);
    expect(calls).toBe(2);

    const hung = new SampleBatcher(() => new Promise<void>(() => {}), { everyMs: 1, perMessage: 1, buffered: 10 });
    hung.push(sample(1));
    hung.push(sample(2));
    await hung.close(50);
    expect(hung.dropped).toBe(1);
  });
});
