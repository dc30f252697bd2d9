import { describe, expect, it } from "vitest";
import { endpointNameSchema, endpointSettingsSchema } from "./endpoints.schemas";
import { buildFeeds, fromNested, toNested, toOipShape } from "./tensors";

const signature = { inputs: [{ name: "x", type: "float32", shape: ["batch", 2] as Array<string | number> }] };

describe("JSON tensors", () => {
  it("round-trips nested arrays through shape and row-major data", () => {
    const nested = [[[1, 2], [3, 4]], [[5, 6], [7, 8]]];
    const { shape, data } = fromNested("x", nested);
    expect(shape).toEqual([2, 2, 2]);
    expect(data).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(toNested(shape, data)).toEqual(nested);
  });

  it("maps symbolic dimensions to -1", () => {
    expect(toOipShape(["batch", 3, "?"])).toEqual([-1, 3, -1]);
  });

  it("normalises a float input per channel when the endpoint asks for it", () => {
    const settings = endpointSettingsSchema.parse({ preprocessing: { x: { mean: [1, 2], std: [2, 4] } } });
    const feeds = buildFeeds("e", signature, settings, [{ name: "x", shape: [1, 2], datatype: "FP32", data: [3, 10] }]);
    expect(Array.from(feeds.x.data as Float32Array)).toEqual([1, 2]);
  });

  it("refuses a batch over maxBatch, naming the setting", () => {
    const settings = endpointSettingsSchema.parse({ maxBatch: 1 });
    expect(() => buildFeeds("e", signature, settings, [{ name: "x", shape: [2, 2], datatype: "FP32", data: [1, 2, 3, 4] }])).toThrow(/maxBatch/);
  });

  it("accepts URL-safe endpoint names only", () => {
    for (const good of ["a", "policy-v2", "x".repeat(63)]) expect(endpointNameSchema.safeParse(good).success).toBe(true);
    for (const bad of ["", "Policy", "-a", "a-", "a_b", "x".repeat(64), "a/b"]) expect(endpointNameSchema.safeParse(bad).success).toBe(false);
  });
});
