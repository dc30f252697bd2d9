import { beforeAll, describe, expect, it } from "vitest";
import { jpegFrames, pngFrame } from "../../tests/helpers/capture-frames";
import { inspectImage } from "./images";

let jpeg: Buffer;
beforeAll(async () => {
  [jpeg] = await jpegFrames(1, { width: 64, height: 48 });
});

describe("inspectImage", () => {
  it("reads a JPEG's and a PNG's size from their headers", () => {
    expect(inspectImage(jpeg)).toEqual({ format: "jpeg", width: 64, height: 48 });
    expect(inspectImage(pngFrame(33, 17))).toEqual({ format: "png", width: 33, height: 17 });
    // Zero padding after EOI, as some cameras send, is not a truncation.
    expect(inspectImage(Buffer.concat([jpeg, Buffer.alloc(16)]))).toMatchObject({ format: "jpeg" });
  });

  it("judges by the bytes, not the name: other files are refused", () => {
    expect(() => inspectImage(Buffer.from("GIF89a......"))).toThrow(/neither a JPEG nor a PNG/);
    expect(() => inspectImage(Buffer.from("<html>not an image</html>"))).toThrow(/neither a JPEG nor a PNG/);
    expect(() => inspectImage(new Uint8Array(0))).toThrow(/empty/);
  });

  it("refuses a frame cut short, anywhere", () => {
    for (const cut of [jpeg.length - 1, jpeg.length - 200, 300, 20, 4]) expect(() => inspectImage(jpeg.subarray(0, cut)), `JPEG cut at ${cut}`).toThrow(/cut short|corrupt|frame header/);
    const png = pngFrame(40, 30);
    for (const cut of [png.length - 1, png.length - 12, 60, 34]) expect(() => inspectImage(png.subarray(0, cut)), `PNG cut at ${cut}`).toThrow(/cut short|IHDR/);
    expect(() => inspectImage(Buffer.concat([png, Buffer.from("trailing")]))).toThrow(/after its IEND/);
  });

  it("refuses sizes no camera makes", () => {
    const huge = Buffer.from(pngFrame(8, 8));
    huge.writeUInt32BE(100_000, 16);
    expect(() => inspectImage(huge)).toThrow(/100000×8 pixels/);
    const zero = Buffer.from(jpeg);
    const sof = zero.indexOf(Buffer.from([0xff, 0xc0]));
    zero.writeUInt16BE(0, sof + 5); // height
    expect(() => inspectImage(zero)).toThrow(/64×0 pixels/);
  });
});
