import { describe, expect, it } from "vitest";
import { judgeTransaction, type TransactionState } from "./transactions-api";

describe("judging a transaction", () => {
  const now = new Date("2026-12-03T12:00:00Z");
  const state = (status: string, message: string | null = null): TransactionState => ({ status, progress: null, message, modelPath: null });
  const base = { transactionId: "tx-1", steps: 100, modelDir: "/m", finalCheckpointSeenAt: null, now, stuckAfterMs: 60_000 };

  it("believes COMPLETED only with checkpoints/last at the final step", () => {
    expect(judgeTransaction({ ...base, state: state("COMPLETED"), checkpointStep: 100 })).toEqual({ kind: "succeeded", via: "api", note: null });
    expect(judgeTransaction({ ...base, state: state("COMPLETED"), checkpointStep: 80 })).toEqual({ kind: "failed", reason: "The transactions API says transaction tx-1 COMPLETED, but checkpoints/last in /m is at step 80 of 100; it is not called complete" });
    expect(judgeTransaction({ ...base, state: state("COMPLETED"), checkpointStep: null })).toMatchObject({ kind: "failed", reason: expect.stringMatching(/\/m has no checkpoints\/last/) });
  });

  it("ends FAILED with the API's message", () => {
    expect(judgeTransaction({ ...base, state: state("FAILED", "CUDA out of memory"), checkpointStep: 40 })).toMatchObject({ kind: "failed", reason: expect.stringMatching(/^The transactions API says transaction tx-1 FAILED: CUDA out of memory; checkpoints\/last in \/m is at step 40 of 100$/) });
  });

  it("lets the folder decide only for a TRAINING status stuck after the final checkpoint appeared", () => {
    expect(judgeTransaction({ ...base, state: state("TRAINING"), checkpointStep: 80 })).toEqual({ kind: "follow", finalCheckpointSeenAt: null });
    expect(judgeTransaction({ ...base, state: state("TRAINING"), checkpointStep: 80, finalCheckpointSeenAt: new Date(0) })).toEqual({ kind: "follow", finalCheckpointSeenAt: null });
    expect(judgeTransaction({ ...base, state: state("TRAINING"), checkpointStep: 100 })).toEqual({ kind: "follow", finalCheckpointSeenAt: now });
    const seen = new Date(now.getTime() - 59_000);
    expect(judgeTransaction({ ...base, state: state("TRAINING"), checkpointStep: 100, finalCheckpointSeenAt: seen })).toEqual({ kind: "follow", finalCheckpointSeenAt: seen });
    expect(judgeTransaction({ ...base, state: state("TRAINING"), checkpointStep: 100, finalCheckpointSeenAt: new Date(now.getTime() - 60_000) })).toMatchObject({ kind: "succeeded", via: "folder", note: expect.stringMatching(/still says TRAINING 60 s after the final checkpoint \(step 100\) appeared in \/m/) });
  });

  it("follows a status it does not know, whatever the folder holds", () => {
    expect(judgeTransaction({ ...base, state: state("QUEUED"), checkpointStep: 100, finalCheckpointSeenAt: new Date(0) })).toEqual({ kind: "follow", finalCheckpointSeenAt: new Date(0) });
  });
});
