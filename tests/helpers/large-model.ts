import { encodeModel } from "../../server/models/onnx-proto";
import type { Signature } from "../../server/models/validation.schemas";

const FLOAT = 1;

/**
 * A model whose file is about `megabytes` large, nearly all of it one weight tensor, so that
 * onnxruntime takes real time to load it (seconds for 200 MB on a small machine):
 * y[batch, 1] = x[batch, 1] + mean(w), where w is all zeros, so y equals x.
 *
 * The weight is written as a second `graph` field after the encoded model, which protobuf
 * merges into the first (an embedded message that appears twice is merged, its repeated fields
 * appended): the same file as encoding it in one go, without protobufjs copying 200 MB around.
 */
export function buildLargeModel(megabytes: number): Buffer {
  const count = Math.floor((megabytes * 1024 * 1024) / 4);
  const head = encodeModel({
    ir_version: 8,
    producer_name: "gantry-tests",
    producer_version: "1",
    opset_import: [{ domain: "", version: 17 }],
    graph: {
      name: "large",
      node: [
        { op_type: "ReduceMean", input: ["w"], output: ["m"], attribute: [{ name: "keepdims", type: 2, i: 1 }] },
        { op_type: "Add", input: ["x", "m"], output: ["y"] },
      ],
      input: [{ name: "x", type: { tensor_type: { elem_type: FLOAT, shape: { dim: [{ dim_param: "batch" }, { dim_value: 1 }] } } } }],
      output: [{ name: "y", type: { tensor_type: { elem_type: FLOAT, shape: { dim: [{ dim_param: "batch" }, { dim_value: 1 }] } } } }],
    },
  });
  // TensorProto { dims: [count, 1], data_type: FLOAT, name: "w", raw_data: zeros }
  const tensorHead = Buffer.concat([field(1, 0, varint(count)), field(1, 0, varint(1)), field(2, 0, varint(FLOAT)), field(8, 2, Buffer.from("w")), key(9, 2), varint(count * 4)]);
  const tensorLength = tensorHead.length + count * 4;
  // GraphProto { initializer (5): tensor } inside ModelProto { graph (7): ... }
  const graphHead = Buffer.concat([key(5, 2), varint(tensorLength)]);
  const modelHead = Buffer.concat([key(7, 2), varint(graphHead.length + tensorLength)]);
  return Buffer.concat([head, modelHead, graphHead, tensorHead, Buffer.alloc(count * 4)]);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let v = value;
  while (v >= 0x80) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

const key = (fieldNumber: number, wireType: 0 | 2) => varint(fieldNumber * 8 + wireType);

function field(fieldNumber: number, wireType: 0 | 2, payload: Buffer): Buffer {
  return wireType === 0 ? Buffer.concat([key(fieldNumber, 0), payload]) : Buffer.concat([key(fieldNumber, 2), varint(payload.length), payload]);
}

export const largeModelSignature: Signature = {
  inputs: [{ name: "x", type: "float32", shape: ["batch", 1] }],
  outputs: [{ name: "y", type: "float32", shape: ["batch", 1] }],
};
