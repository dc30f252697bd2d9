import { describe, expect, it } from "vitest";
import type { StoredFeature } from "./datasets.schemas";
import { cameraNameFor, detectFeatures, resolveFeatureMap } from "./feature-map";

const vector = (n: number, names?: unknown): StoredFeature => ({ dtype: "float32", shape: [n], names: names ?? null });
const video: StoredFeature = { dtype: "video", shape: [480, 640, 3], names: ["height", "width", "channels"] };
const bookkeeping = { timestamp: vector(1), frame_index: { dtype: "int64", shape: [1] }, episode_index: { dtype: "int64", shape: [1] }, index: { dtype: "int64", shape: [1] }, task_index: { dtype: "int64", shape: [1] } };

describe("detecting a dataset's action, state and cameras", () => {
  it("takes LeRobot's own names without asking", () => {
    const d = detectFeatures({ action: vector(6), "observation.state": vector(6), "observation.images.front": video, ...bookkeeping });
    expect(d.proposed).toEqual({ action: "action", state: "observation.state", cameras: ["observation.images.front"] });
    expect(d.needsConfirmation).toBe(false);
  });

  it.each([
    // As found on the hub: names other recorders and converters chose.
    [{ actions: vector(7), state: vector(7), image: video }, { action: "actions", state: "state", cameras: ["image"] }],
    [{ action: vector(2), "observation.state": vector(2), "observation.image": video }, { action: "action", state: "observation.state", cameras: ["observation.image"] }],
    [{ action: vector(14), "observation.qpos": vector(14), "observation.images.cam_high": video, "observation.images.cam_low": video }, { action: "action", state: "observation.qpos", cameras: ["observation.images.cam_high", "observation.images.cam_low"] }],
    [{ "action.joints": vector(6, { motors: ["shoulder_pan", "gripper"] }), "observation.robot_state": vector(6), wrist: video }, { action: "action.joints", state: "observation.robot_state", cameras: ["wrist"] }],
  ])("proposes %j", (features, proposed) => {
    const d = detectFeatures({ ...features, ...bookkeeping });
    expect(d.proposed).toEqual(proposed);
    expect(d.needsConfirmation).toBe(true);
  });

  it("prefers a state as wide as the action, and takes no long vector for joints", () => {
    const d = detectFeatures({ action: vector(6), "observation.state": vector(14), "observation.joint_state": vector(6), "observation.embedding_action": vector(512), ...bookkeeping });
    expect(d.proposed.action).toBe("action");
    expect(d.proposed.state).toBe("observation.state");
    const tie = detectFeatures({ actions: vector(6), "observation.arm_state": vector(6), "observation.base_state": vector(3), ...bookkeeping });
    expect(tie.proposed.state).toBe("observation.arm_state");
    expect(detectFeatures({ "observation.action_embedding": vector(512), left: vector(6), ...bookkeeping }).proposed.action).toBeNull();
  });

  it("proposes nothing it cannot tell apart, listing the float vectors to choose from", () => {
    const d = detectFeatures({ left: vector(6), right: vector(6), ...bookkeeping });
    expect(d.proposed).toEqual({ action: null, state: null, cameras: [] });
    expect(d.candidates).toEqual({ action: ["left", "right"], state: ["left", "right"] });
  });

  it("says what a mapping leaves out: image features, vectors, cameras not chosen; keeps single values", () => {
    const features = { actions: vector(6), state: vector(6), image: video, "observation.images.side": video, "observation.pixels": { dtype: "image", shape: [96, 96, 3] }, "observation.environment_state": vector(10), "next.reward": vector(1), "next.done": { dtype: "bool", shape: [1] }, ...bookkeeping };
    const map = resolveFeatureMap(features, { action: "actions", state: "state", cameras: ["image"] });
    expect(map.cameras).toEqual([{ camera: "image", key: "image" }]);
    expect(map.dropped.map((d) => d.key)).toEqual(["observation.images.side", "observation.pixels", "observation.environment_state"]);
    expect(map.dropped[0].reason).toBe("a camera left out at import");
  });

  it("gives every camera a name that is a folder name, unique in the dataset", () => {
    expect(cameraNameFor("observation.images.front", [])).toBe("front");
    expect(cameraNameFor("observation.image", [])).toBe("image");
    expect(cameraNameFor("image", ["image"])).toBe("image_2");
    expect(cameraNameFor("observation.images.top view/left", [])).toBe("top_view_left");
    expect(cameraNameFor("...", [])).toBe("camera");
  });
});
