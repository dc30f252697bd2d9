import { encodeModel, type OnnxNode } from "../../server/models/onnx-proto";

/**
 * A model that takes long on one small input: x[1] is expanded to an n×n matrix and
 * multiplied `rounds` times; y is the mean, a scalar. For concurrency and timeout tests.
 */
export function buildSlowModel(n = 512, rounds = 40): Buffer {
  const nodes: OnnxNode[] = [{ op_type: "Expand", input: ["x", "shape"], output: ["m0"] }];
  for (let i = 0; i < rounds; i++) nodes.push({ op_type: "MatMul", input: [`m${i}`, "m0"], output: [`m${i + 1}`] });
  nodes.push({ op_type: "ReduceMean", input: [`m${rounds}`], output: ["y"], attribute: [{ name: "keepdims", type: 2, i: 0 }] });
  return encodeModel({
    ir_version: 8,
    producer_name: "gantry-tests",
    producer_version: "1",
    opset_import: [{ domain: "", version: 17 }],
    graph: {
      name: "slow",
      node: nodes,
      input: [{ name: "x", type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 1 }] } } } }],
      output: [{ name: "y", type: { tensor_type: { elem_type: 1, shape: { dim: [] } } } }],
      initializer: [{ name: "shape", dims: [2], data_type: 7, int64_data: [n, n] }],
    },
  });
}
