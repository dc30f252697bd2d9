import path from "node:path";
import { describe, expect, it } from "vitest";
import { buildConvNet, buildExternalDataModel, buildGarbage, buildMixedTypesModel, buildMlp, buildTruncatedModel, buildTwoInputModel } from "../../tests/helpers/onnx-models";
import { readSignature, SignatureReader } from "./onnx-signature";
import { inspectOnnxModel } from "./validation.service";

/** Pushes `bytes` in pieces of `size`, as a stream delivers them. */
function readInPieces(bytes: Buffer, size: number) {
  const reader = new SignatureReader();
  for (let i = 0; i < bytes.length; i += size) reader.push(bytes.subarray(i, i + size));
  return reader.finish();
}

describe("reading a model's signature as its bytes stream past", () => {
  it.each([
    ["the MLP", buildMlp()],
    ["a model listing an initializer among its inputs", buildTwoInputModel()],
    ["int64 and bool inputs", buildMixedTypesModel()],
    ["a conv net", buildConvNet()],
    ["external data", buildExternalDataModel("weights.bin")],
  ])("gives the signature the full decode gives, for %s, whatever the pieces", async (_name, bytes) => {
    const { report } = await inspectOnnxModel({ bytes, modelDir: path.dirname(import.meta.filename) });
    expect(report.signature).not.toBeNull();
    for (const size of [1, 3, 64, bytes.length]) expect(readInPieces(bytes, size)).toEqual({ signature: report.signature });
    expect(await readSignature((async function* () { yield bytes.subarray(0, 10); yield bytes.subarray(10); })())).toEqual({ signature: report.signature });
  });

  it("says why bytes that are not a model cannot be read", () => {
    expect(readInPieces(buildTruncatedModel(), 5)).toEqual({ error: "the file ends before the model does — it looks truncated" });
    expect(readInPieces(buildGarbage(), 100)).toMatchObject({ error: expect.stringMatching(/^its bytes do not decode as ONNX protobuf/) });
    expect(readInPieces(Buffer.alloc(0), 1)).toEqual({ error: "it has no graph" });
  });
});
