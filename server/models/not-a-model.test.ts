import { describe, expect, it } from "vitest";
import { buildMlp } from "../../tests/helpers/onnx-models";
import { recogniseNotAModel } from "./not-a-model";

describe("files sent instead of a model", () => {
  it("names an LFS pointer, a web page and JSON, and never a real model", () => {
    expect(recogniseNotAModel(Buffer.from("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n"))).toMatch(/Git LFS pointer/);
    expect(recogniseNotAModel(Buffer.from("\uFEFF  <!doctype HTML><html>"))).toMatch(/web page/);
    expect(recogniseNotAModel(Buffer.from("<html>\n<body>"))).toMatch(/web page/);
    expect(recogniseNotAModel(Buffer.from('  {"detail": "Unauthorized"}'))).toMatch(/JSON text/);
    expect(recogniseNotAModel(buildMlp())).toBeNull();
    expect(recogniseNotAModel(Buffer.from([0x08, 0x08, 0x12, 0x04]))).toBeNull();
  });
});
