import { afterAll, describe, expect, it } from "vitest";
import { buildMlp, runMlpInJs, seededValues } from "../../tests/helpers/onnx-models";
import { buildSlowModel } from "../../tests/helpers/slow-model";
import { SessionPool, type RawTensor } from "./session-pool";

// Worker sessions that start as runs need them, and what a run does when one cannot start.

const pools: SessionPool[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.release()));
});

const mlpFeeds = (rows: number[][]): Record<string, RawTensor> => ({ x: { type: "float32", data: Float32Array.from(rows.flat()), dims: [rows.length, 4] } });
const slowFeeds = (): Record<string, RawTensor> => ({ x: { type: "float32", data: Float32Array.from([1]), dims: [1] } });

describe("session pool", () => {
  it("starts a worker for a run that finds none idle, up to its size, and answers every run right", async () => {
    const pool = await SessionPool.create(buildMlp(), { size: 3, threads: 1, start: 1 });
    pools.push(pool);
    expect(pool.started).toBe(1);
    const rows = Array.from({ length: 6 }, (_, i) => [seededValues(4, 900 + i)]);
    const answers = await Promise.all(rows.map((r) => pool.run(mlpFeeds(r), ["y"])));
    expect(pool.started).toBeGreaterThanOrEqual(2);
    expect(pool.started).toBeLessThanOrEqual(3);
    answers.forEach((a, i) => {
      const expected = runMlpInJs(rows[i])[0];
      Array.from(a.y.data as Float32Array).forEach((v, j) => expect(Math.abs(v - expected[j])).toBeLessThan(1e-5));
    });
  });

  it("lets a run wait for a busy worker when another cannot start, and tries no other start for a while", async () => {
    const bytes = buildSlowModel();
    const pool = await SessionPool.create(bytes, { size: 4, threads: 1, start: 1 });
    pools.push(pool);
    // The pool keeps the model's bytes to start more workers: damaged, no further one can load.
    bytes.fill(0);
    const first = pool.run(slowFeeds(), ["y"]);
    const second = pool.run(slowFeeds(), ["y"]); // finds none idle; its worker fails to start; it waits for the first's
    const [a, b] = await Promise.all([first, second]);
    expect(Number((a.y.data as Float32Array)[0])).toBeCloseTo(Number((b.y.data as Float32Array)[0]), 5);
    expect(pool.started).toBe(1);
    // Within the next 30 s runs wait for the one worker rather than try to start another.
    const more = await Promise.all([pool.run(slowFeeds(), ["y"]), pool.run(slowFeeds(), ["y"]), pool.run(slowFeeds(), ["y"])]);
    expect(more).toHaveLength(3);
    expect(pool.started).toBe(1);
  });

  it("gives a run the worker that finished while its own failed to start", async () => {
    const bytes = buildMlp();
    const pool = await SessionPool.create(bytes, { size: 2, threads: 1, start: 1 });
    pools.push(pool);
    bytes.fill(0);
    const rows = [[seededValues(4, 11)], [seededValues(4, 12)]];
    // The first run takes microseconds; the second's worker needs a thread and onnxruntime before
    // it can fail, so the first worker is idle again by then.
    const [a, b] = await Promise.all(rows.map((r) => pool.run(mlpFeeds(r), ["y"])));
    [a, b].forEach((answer, i) => {
      const expected = runMlpInJs(rows[i])[0];
      Array.from(answer.y.data as Float32Array).forEach((v, j) => expect(Math.abs(v - expected[j])).toBeLessThan(1e-5));
    });
    expect(pool.started).toBe(1);
  });

  it("refuses runs once released, and stops a worker that finishes starting after the release", async () => {
    const pool = await SessionPool.create(buildMlp(), { size: 2, threads: 1, start: 1 });
    const busy = pool.run(mlpFeeds([seededValues(4, 1)]), ["y"]);
    const growing = pool.run(mlpFeeds([seededValues(4, 2)]), ["y"]).catch((e: Error) => e);
    await busy;
    await pool.release();
    const late = await growing;
    // Either it got its worker before the release and ran, or it was told the sessions are gone.
    if (late instanceof Error) expect(late.message).toMatch(/released/);
    await expect(pool.run(mlpFeeds([seededValues(4, 3)]), ["y"])).rejects.toThrow(/released/);
  });
});
