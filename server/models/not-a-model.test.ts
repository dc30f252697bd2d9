import { describe, expect, it } from "vitest";
import { buildMlp } from "../../tests/helpers/onnx-models";
import { recogniseNotAModel } from "./not-a-model";

describe("files sent instead of a model", () => {
  it("names an LFS pointer, a web page and JSON, and never a real model", () => {
    expect(recogniseNotAModel(Buffer.from("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n"))).toMatch(/Git LFS pointer/);
    expect(recogniseNotAModel(Buffer.from("\uFEFF  <!doctype HTML><html>"))).toMatch(/web page/); // after a UTF-8 byte order mark
    expect(recogniseNotAModel(Buffer.from("<html>\n<body>"))).toMatch(/web page/);
    expect(recogniseNotAModel(Buffer.from('  {"detail": "Unauthorized"}'))).toMatch(/JSON text/);
    expect(recogniseNotAModel(buildMlp())).toBeNull();
    expect(recogniseNotAModel(Buffer.from([0x08, 0x08, 0x12, 0x04]))).toBeNull();
    // Bytes that only begin like text are not named: a control byte further on says they are not.
    expect(recogniseNotAModel(Buffer.from([0x7b, 0x22, 0x00, 0x13, 0xff]))).toBeNull();
    expect(recogniseNotAModel(Buffer.from([0x20, 0x5b, 0x05]))).toBeNull();
  });
});
