import { describe, expect, it } from "vitest";
import { describeOrtError } from "./ort-errors";

// Messages as onnxruntime-node 1.2x gives them for models nobody here made.
const raw = {
  opset: "Load model from /tmp/gantry-onnx-x1/m3/model/model.onnx failed:/onnxruntime_src/onnxruntime/core/graph/model_load_utils.h:46 void onnxruntime::model_load_utils::ValidateOpsetForDomain(const std::unordered_map<std::__cxx11::basic_string<char>, int>&, const onnxruntime::logging::Logger&, bool, const std::string&, int) ONNX Runtime only *guarantees* support for models stamped with official released onnx opset versions. Opset 99 is under development and support for this is limited. The operator schemas and or other functionality may change before next ONNX release and in this case ONNX Runtime will not guarantee backward compatibility. Current official support for domain ai.onnx is till opset 26.\n",
  ir: "Load model from /tmp/ortprobe/ir99.onnx failed:/onnxruntime_src/onnxruntime/core/graph/model.cc:202 onnxruntime::Model::Model(onnx::ModelProto&&, const onnxruntime::PathString&, const onnxruntime::IOnnxRuntimeOpSchemaRegistryList*, const onnxruntime::logging::Logger&, const onnxruntime::ModelOptions&) Unsupported model IR version: 99, max supported IR version: 13\n",
  op: "Load model from /tmp/ortprobe/unsupported.onnx failed:Fatal error: com.example:NoSuchOp(-1) is not a registered function/op",
  protobuf: "Load model from /tmp/ortprobe/trunc.onnx failed:Protobuf parsing failed.",
  shape: "Load model from /tmp/ortprobe/matmulBad.onnx failed:Node () Op (MatMul) [ShapeInferenceError] Incompatible dimensions for matrix multiplication",
  broadcast: "Non-zero status code returned while running Add node. Name:'' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/math/element_wise_ops.h:563 void onnxruntime::BroadcastIterator::Init(ptrdiff_t, ptrdiff_t) axis == 1 || axis == largest was false. Attempting to broadcast an axis by a dimension other than 1. 2 by 3\n",
};

describe("describeOrtError", () => {
  it("keeps no C++ signature, source line or temporary path", () => {
    for (const text of Object.values(raw)) {
      const message = describeOrtError(new Error(text));
      expect(message).not.toMatch(/onnxruntime::|onnxruntime_src|std::|\/tmp\/|\.cc:|\.h:\d|Load model from/);
      expect(message.length).toBeGreaterThan(20);
    }
  });

  it("says plainly what the common failures mean", () => {
    expect(describeOrtError(raw.opset)).toBe("the model uses opset 99 of ai.onnx, newer than this onnxruntime supports (up to 26) — export it with opset 26 or lower");
    expect(describeOrtError(raw.ir)).toBe("the model's IR version is 99, newer than this onnxruntime reads (up to 13) — export it with an older ONNX version");
    expect(describeOrtError(raw.op)).toMatch(/^the model uses operator NoSuchOp of domain com\.example, which this onnxruntime does not have/);
    expect(describeOrtError(raw.protobuf)).toMatch(/not a readable ONNX model/);
    expect(describeOrtError(raw.shape)).toBe("Node () Op (MatMul) [ShapeInferenceError] Incompatible dimensions for matrix multiplication");
    expect(describeOrtError(raw.broadcast)).toBe("Add node failed: Attempting to broadcast an axis by a dimension other than 1. 2 by 3");
  });
});
