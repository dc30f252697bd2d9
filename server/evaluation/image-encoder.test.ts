import { describe, expect, it } from "vitest";
import { buildImageEncoder, seededValues } from "../../tests/helpers/onnx-models";
import { ENCODER_MEAN, ENCODER_STD, imageEncoderShape, openImageEncoder, toInputTensor } from "./image-encoder";

// Which signatures are image encoders, and that a frame reaches the model as the model expects
// it: planar RGB, normalised per channel, height then width, checked against the tiny encoder
// computed in plain JS.

const spec = (name: string, shape: (number | string)[], type = "float32") => ({ name, type, shape });

describe("image encoder signatures", () => {
  it("takes one float image batch in and one vector per image out", () => {
    expect(imageEncoderShape({ inputs: [spec("pixel_values", ["batch", 3, 224, 224])], outputs: [spec("image_embeds", ["batch", 512])] })).toEqual({ ok: true, input: "pixel_values", output: "image_embeds", width: 224, height: 224, dims: 512 });
    expect(imageEncoderShape({ inputs: [spec("x", [1, 3, 16, 24])], outputs: [spec("y", [1, "d"])] })).toMatchObject({ ok: true, width: 24, height: 16, dims: null });
  });

  it("says what is wrong with any other", () => {
    const why = (inputs: ReturnType<typeof spec>[], outputs: ReturnType<typeof spec>[]) => {
      const shape = imageEncoderShape({ inputs, outputs });
      return shape.ok ? "ok" : shape.reason;
    };
    const out = [spec("y", ["batch", 8])];
    expect(why([spec("a", ["n", 3, 8, 8]), spec("b", ["n", 3, 8, 8])], out)).toBe("it has 2 inputs; an image encoder has one, the image");
    expect(why([spec("x", ["n", 3, 8, 8])], [...out, spec("z", ["n", 8])])).toBe("it has 2 outputs; an image encoder has one, the embedding");
    expect(why([spec("x", ["n", 3, 8, 8], "uint8")], out)).toBe('its input "x" holds uint8; an image encoder takes float32 pixels');
    expect(why([spec("x", ["n", 8, 8, 3])], out)).toBe('its input "x" has shape [n, 8, 8, 3]; an image encoder takes [1, 3, H, W] or [N, 3, H, W]');
    expect(why([spec("x", [2, 3, 8, 8])], out)).toMatch(/has shape \[2, 3, 8, 8\]/);
    expect(why([spec("x", ["n", 3, "h", "w"])], out)).toBe('its input "x" does not fix the image size ([n, 3, h, w]); export it with a fixed height and width');
    expect(why([spec("x", ["n", 3, 4096, 4096])], out)).toMatch(/at most 1024 px a side/);
    expect(why([spec("x", ["n", 3, 8, 8])], [spec("y", ["n", 8, 7, 7])])).toBe('its output "y" has shape [n, 8, 7, 7]; an embedding is one vector per image, [1, D] or [N, D]');
  });
});

/** The test encoder (Conv 3×3, stride 2, pad 1 → Relu → mean over positions) in plain JS on a [3, H, W] input. */
function encodeInJs(input: Float32Array, width: number, height: number, dims: number): number[] {
  const w = seededValues(dims * 27, 11);
  const b = seededValues(dims, 12).map((x) => x + 1);
  const [oh, ow] = [Math.ceil(height / 2), Math.ceil(width / 2)];
  return Array.from({ length: dims }, (_, d) => {
    let total = 0;
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        let v = b[d];
        for (let c = 0; c < 3; c++) {
          for (let ky = 0; ky < 3; ky++) {
            for (let kx = 0; kx < 3; kx++) {
              const [y, x] = [oy * 2 - 1 + ky, ox * 2 - 1 + kx];
              if (y >= 0 && y < height && x >= 0 && x < width) v += w[((d * 3 + c) * 3 + ky) * 3 + kx] * input[(c * height + y) * width + x];
            }
          }
        }
        total += Math.max(0, v);
      }
    }
    return total / (oh * ow);
  });
}

describe("embedding a frame", () => {
  it("feeds planar, normalised RGB of height × width and returns the embedding at length 1", async () => {
    const [width, height, dims] = [24, 16, 8];
    // Red rises left to right, green top to bottom, blue is constant: a transposed or interleaved frame would differ.
    const rgb = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) rgb.set([Math.round((x / (width - 1)) * 255), Math.round((y / (height - 1)) * 255), 90], (y * width + x) * 3);
    const input = toInputTensor(rgb, width, height);
    expect(input[0]).toBeCloseTo((0 - ENCODER_MEAN[0]) / ENCODER_STD[0], 5);
    expect(input[width - 1]).toBeCloseTo((1 - ENCODER_MEAN[0]) / ENCODER_STD[0], 5);
    expect(input[width * height + (height - 1) * width]).toBeCloseTo((1 - ENCODER_MEAN[1]) / ENCODER_STD[1], 5);

    const encoder = await openImageEncoder(buildImageEncoder({ width, height, dims, batch: 1 }), { modelName: "test", number: 1, width, height, input: "image", output: "embedding" });
    try {
      const got = Array.from(await encoder.embed(rgb));
      const want = encodeInJs(input, width, height, dims);
      const norm = Math.hypot(...want);
      expect(got).toHaveLength(dims);
      got.forEach((v, i) => expect(v).toBeCloseTo(want[i] / norm, 4));
    } finally {
      await encoder.release();
    }
  });
});
