import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { matchFeature, NormalizerFileError, parseNormalizer, parseNumberList } from "./normalizer";

function safetensors(tensors: Record<string, { dtype: "F32" | "F64" | "I64"; values: number[] }>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const buf = t.dtype === "F32" ? Buffer.from(new Float32Array(t.values).buffer) : t.dtype === "F64" ? Buffer.from(new Float64Array(t.values).buffer) : Buffer.from(new BigInt64Array(t.values.map(BigInt)).buffer);
    header[name] = { dtype: t.dtype, shape: [t.values.length], data_offsets: [offset, offset + buf.length] };
    offset += buf.length;
    chunks.push(buf);
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return new Uint8Array(Buffer.concat([length, json, ...chunks]));
}

describe("LeRobot normalizer files", () => {
  it("reads mean and std per feature from the real so101 dataset's stats.json", () => {
    const bytes = fs.readFileSync(new URL("../../tests/fixtures/so101-record-v3/meta/stats.json", import.meta.url));
    const stats = parseNormalizer(bytes, "stats.json");
    expect(stats["observation.state"].mean).toHaveLength(6);
    expect(stats["observation.state"].std).toHaveLength(6);
    expect(stats.action.mean).toHaveLength(6);
    expect(stats["observation.state"].std.every((v) => v > 0)).toBe(true);
  });

  it("reads a policy's normalizer safetensors, skipping integer buffers", () => {
    const bytes = safetensors({
      "buffer_observation_state.mean": { dtype: "F32", values: [1, 2, 3] },
      "buffer_observation_state.std": { dtype: "F32", values: [0.5, 0.25, 2] },
      "action.mean": { dtype: "F64", values: [0.1] },
      "action.std": { dtype: "F64", values: [0.2] },
      "observation.state.count": { dtype: "I64", values: [100] },
    });
    expect(parseNormalizer(bytes, "policy_preprocessor_step_3_normalizer_processor.safetensors")).toEqual({
      "observation.state": { mean: [1, 2, 3], std: [0.5, 0.25, 2] },
      action: { mean: [0.1], std: [0.2] },
    });
  });

  it("refuses damaged files with a reason", () => {
    expect(() => parseNormalizer(new Uint8Array([1, 2, 3]), "x.safetensors")).toThrow(NormalizerFileError);
    const bad = new Uint8Array(16);
    new DataView(bad.buffer).setBigUint64(0, 1000n, true);
    expect(() => parseNormalizer(bad, "x.safetensors")).toThrow(/runs past the file/);
    expect(() => parseNormalizer(new TextEncoder().encode("not json"), "stats.json")).toThrow(/neither JSON/);
    expect(() => parseNormalizer(new TextEncoder().encode('{"a": {"mean": [1]}}'), "stats.json")).toThrow(/no feature with both/);
  });

  it("matches inputs to features and parses number lists", () => {
    expect(matchFeature("observation_state", ["action", "observation.state"])).toBe("observation.state");
    expect(matchFeature("x", ["action"])).toBeNull();
    expect(parseNumberList("0.1, 0.2 3")).toEqual([0.1, 0.2, 3]);
    expect(parseNumberList("1, two")).toBeNull();
    expect(parseNumberList("")).toBeNull();
  });
});
