import { env, type Env } from "../env";

/** The capture settings services work with; tests pass their own. */
export interface CaptureLimits {
  maxFrameBytes: number;
  framesPerSecond: number;
  jointStatesPerSecond: number;
  maxSnapshotBytes: number;
  maxSnapshots: number;
  trainerSilentMs: number;
}

export function captureLimits(e: Env = env()): CaptureLimits {
  return {
    maxFrameBytes: e.CAPTURE_MAX_FRAME_BYTES,
    framesPerSecond: e.CAPTURE_FRAMES_PER_SECOND,
    jointStatesPerSecond: e.CAPTURE_JOINT_STATES_PER_SECOND,
    maxSnapshotBytes: e.CAPTURE_MAX_SNAPSHOT_BYTES,
    maxSnapshots: e.CAPTURE_MAX_SNAPSHOTS,
    trainerSilentMs: e.CAPTURE_TRAINER_SILENT_MS,
  };
}
