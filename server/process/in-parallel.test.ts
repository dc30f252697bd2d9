import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { inParallel } from "./in-parallel";

describe("inParallel", () => {
  it("runs at most `limit` at once and returns results in the items' order", async () => {
    let running = 0;
    let most = 0;
    const results = await inParallel([30, 5, 20, 1, 10, 2], 3, undefined, async (ms, i) => {
      most = Math.max(most, ++running);
      await sleep(ms);
      running--;
      return `${i}:${ms}`;
    });
    expect(results).toEqual(["0:30", "1:5", "2:20", "3:1", "4:10", "5:2"]);
    expect(most).toBe(3);
  });

  it("aborts the others on the first failure and throws it once they have stopped", async () => {
    const stopped: number[] = [];
    const started: number[] = [];
    const run = inParallel([0, 1, 2, 3, 4], 2, undefined, async (n, _i, signal) => {
      started.push(n);
      if (n === 1) throw new Error("item 1 failed");
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
      stopped.push(n);
    });
    await expect(run).rejects.toThrow("item 1 failed");
    expect(started).toEqual([0, 1]);
    expect(stopped).toEqual([0]);
  });

  it("takes nothing more once the caller's signal is aborted", async () => {
    const caller = new AbortController();
    const done: number[] = [];
    const run = inParallel([0, 1, 2, 3], 1, caller.signal, async (n) => {
      if (n === 1) caller.abort(new Error("cancelled"));
      done.push(n);
    });
    await expect(run).rejects.toThrow("cancelled");
    expect(done).toEqual([0, 1]);
  });
});
