import { encodeModel, type OnnxDim, type OnnxModel, type OnnxNode, type OnnxTensor, type OnnxValueInfo } from "../../server/models/onnx-proto";

// Small ONNX models built in code, so tests never download one.

const FLOAT = 1;
const INT64 = 7;
const BOOL = 9;
const FLOAT16 = 10;
const ATTR_INT = 2;
const ATTR_INTS = 7;

function valueInfo(name: string, elemType: number, shape: Array<number | string>): OnnxValueInfo {
  const dim: OnnxDim[] = shape.map((d) => (typeof d === "number" ? { dim_value: d } : { dim_param: d }));
  return { name, type: { tensor_type: { elem_type: elemType, shape: { dim } } } };
}

function floatTensor(name: string, dims: number[], values: number[]): OnnxTensor {
  const raw = new Uint8Array(new Float32Array(values).buffer);
  return { name, dims, data_type: FLOAT, raw_data: raw };
}

function model(
  graph: { nodes: OnnxNode[]; inputs: OnnxValueInfo[]; outputs: OnnxValueInfo[]; initializers?: OnnxTensor[] },
  extraOpsets: Array<{ domain: string; version: number }> = [],
  { irVersion = 8, opset = 17 }: { irVersion?: number; opset?: number } = {},
): OnnxModel {
  return {
    ir_version: irVersion,
    producer_name: "gantry-tests",
    producer_version: "1",
    opset_import: [{ domain: "", version: opset }, ...extraOpsets],
    graph: { name: "test", node: graph.nodes, input: graph.inputs, output: graph.outputs, initializer: graph.initializers ?? [] },
  };
}

/** Deterministic values in [-1, 1). */
export function seededValues(count: number, seed: number): number[] {
  let state = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out.push((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1);
  }
  // Round through float32 so a JS reference computes with the same weights the model holds.
  return Array.from(new Float32Array(out));
}

/** Weights of the MLP: x[batch,4] → MatMul w1[4,8] + b1 → Relu → MatMul w2[8,3] + b2 → y[batch,3]. */
export const mlpWeights = {
  w1: seededValues(32, 1),
  b1: seededValues(8, 2),
  w2: seededValues(24, 3),
  b2: seededValues(3, 4),
};

/** `batch` names the first dimension: a symbol, "" for an unnamed one, or a fixed size. */
export function buildMlp(batch: string | number = "batch"): Buffer {
  const { w1, b1, w2, b2 } = mlpWeights;
  return encodeModel(
    model({
      nodes: [
        { op_type: "MatMul", input: ["x", "w1"], output: ["h0"] },
        { op_type: "Add", input: ["h0", "b1"], output: ["h1"] },
        { op_type: "Relu", input: ["h1"], output: ["h2"] },
        { op_type: "MatMul", input: ["h2", "w2"], output: ["h3"] },
        { op_type: "Add", input: ["h3", "b2"], output: ["y"] },
      ],
      inputs: [valueInfo("x", FLOAT, [batch, 4])],
      outputs: [valueInfo("y", FLOAT, [batch, 3])],
      initializers: [floatTensor("w1", [4, 8], w1), floatTensor("b1", [8], b1), floatTensor("w2", [8, 3], w2), floatTensor("b2", [3], b2)],
    }),
  );
}

/** The MLP computed in plain JS, in float64: the reference for test vectors. */
export function runMlpInJs(x: number[][]): number[][] {
  const { w1, b1, w2, b2 } = mlpWeights;
  return x.map((row) => {
    const hidden = Array.from({ length: 8 }, (_, j) => Math.max(0, row.reduce((sum, v, i) => sum + v * w1[i * 8 + j], 0) + b1[j]));
    return Array.from({ length: 3 }, (_, k) => hidden.reduce((sum, v, j) => sum + v * w2[j * 3 + k], 0) + b2[k]);
  });
}

/** y = (a + b) * scale, with a and b [batch, 3] and scale stored as float_data; the graph also lists scale as an input. */
export function buildTwoInputModel(): Buffer {
  return encodeModel(
    model({
      nodes: [
        { op_type: "Add", input: ["a", "b"], output: ["sum"] },
        { op_type: "Mul", input: ["sum", "scale"], output: ["y"] },
      ],
      // An initializer listed among the inputs (older exporters do this) is not a user input.
      inputs: [valueInfo("a", FLOAT, ["batch", 3]), valueInfo("b", FLOAT, ["batch", 3]), valueInfo("scale", FLOAT, [3])],
      outputs: [valueInfo("y", FLOAT, ["batch", 3])],
      initializers: [{ name: "scale", dims: [3], data_type: FLOAT, float_data: [2, 3, 4] }],
    }),
  );
}

/** sum = a + b and diff = a - b, with a and b [batch, 2]: a model with two outputs. */
export function buildTwoOutputModel(): Buffer {
  return encodeModel(
    model({
      nodes: [
        { op_type: "Add", input: ["a", "b"], output: ["sum"] },
        { op_type: "Sub", input: ["a", "b"], output: ["diff"] },
      ],
      inputs: [valueInfo("a", FLOAT, ["batch", 2]), valueInfo("b", FLOAT, ["batch", 2])],
      outputs: [valueInfo("sum", FLOAT, ["batch", 2]), valueInfo("diff", FLOAT, ["batch", 2])],
    }),
  );
}

/** y = float(ids) * float(mask) over a symbolic length n: an int64 and a bool input. */
export function buildMixedTypesModel(): Buffer {
  const to = (type: number) => [{ name: "to", type: ATTR_INT, i: type }];
  return encodeModel(
    model({
      nodes: [
        { op_type: "Cast", input: ["ids"], output: ["ids_f"], attribute: to(FLOAT) },
        { op_type: "Cast", input: ["mask"], output: ["mask_f"], attribute: to(FLOAT) },
        { op_type: "Mul", input: ["ids_f", "mask_f"], output: ["y"] },
      ],
      inputs: [valueInfo("ids", INT64, ["n"]), valueInfo("mask", BOOL, ["n"])],
      outputs: [valueInfo("y", FLOAT, ["n"])],
    }),
  );
}

/** y = Cast(x, float16) over x[batch, 2]: a float32 input and a float16 output, as a mixed-precision export ends. */
export function buildHalfOutputModel(): Buffer {
  return encodeModel(
    model({
      nodes: [{ op_type: "Cast", input: ["x"], output: ["y"], attribute: [{ name: "to", type: ATTR_INT, i: FLOAT16 }] }],
      inputs: [valueInfo("x", FLOAT, ["batch", 2])],
      outputs: [valueInfo("y", FLOAT16, ["batch", 2])],
    }),
  );
}

/** y = Cast(x, float32) over x[batch, 2]: a float16 input, as a model exported for float16 end to end takes. */
export function buildHalfInputModel(): Buffer {
  return encodeModel(
    model({
      nodes: [{ op_type: "Cast", input: ["x"], output: ["y"], attribute: [{ name: "to", type: ATTR_INT, i: FLOAT }] }],
      inputs: [valueInfo("x", FLOAT16, ["batch", 2])],
      outputs: [valueInfo("y", FLOAT, ["batch", 2])],
    }),
  );
}

/** y = Relu(x) over x[-1, 6]: the batch written as size -1, as some converters write a free dimension. */
export function buildMinusOneDimModel(): Buffer {
  return encodeModel(
    model({
      nodes: [{ op_type: "Relu", input: ["x"], output: ["y"] }],
      inputs: [valueInfo("x", FLOAT, [-1, 6])],
      outputs: [valueInfo("y", FLOAT, [-1, 6])],
    }),
  );
}

/** Conv(3→4, 3x3, pad 1) + Relu + GlobalAveragePool + Flatten on x[batch,3,16,16] → y[batch,4]. */
export function buildConvNet(): Buffer {
  return encodeModel(
    model({
      nodes: [
        {
          op_type: "Conv",
          input: ["x", "w", "b"],
          output: ["c"],
          attribute: [
            { name: "kernel_shape", type: ATTR_INTS, ints: [3, 3] },
            { name: "pads", type: ATTR_INTS, ints: [1, 1, 1, 1] },
          ],
        },
        { op_type: "Relu", input: ["c"], output: ["r"] },
        { op_type: "GlobalAveragePool", input: ["r"], output: ["p"] },
        { op_type: "Flatten", input: ["p"], output: ["y"], attribute: [{ name: "axis", type: ATTR_INT, i: 1 }] },
      ],
      inputs: [valueInfo("x", FLOAT, ["batch", 3, 16, 16])],
      outputs: [valueInfo("y", FLOAT, ["batch", 4])],
      initializers: [floatTensor("w", [4, 3, 3, 3], seededValues(108, 5)), floatTensor("b", [4], seededValues(4, 6))],
    }),
  );
}

/**
 * y = table[ids] over ids[n] (int64) and a 4×2 table: ids 0–3, the values validation generates,
 * run; an id of 4 or more makes onnxruntime throw, as an index model does on a bad index.
 */
export function buildLookupModel(): Buffer {
  return encodeModel(
    model({
      nodes: [{ op_type: "Gather", input: ["table", "ids"], output: ["y"], attribute: [{ name: "axis", type: ATTR_INT, i: 0 }] }],
      inputs: [valueInfo("ids", INT64, ["n"])],
      outputs: [valueInfo("y", FLOAT, ["n", 2])],
      initializers: [floatTensor("table", [4, 2], [0, 1, 2, 3, 4, 5, 6, 7])],
    }),
  );
}

/** y = Reshape(x, [1, 4]) over x[batch, 4]: runs at batch 1 and fails at any other, as a model exported for one batch size does. */
export function buildBatchOneModel(): Buffer {
  return encodeModel(
    model({
      nodes: [{ op_type: "Reshape", input: ["x", "shape"], output: ["y"] }],
      inputs: [valueInfo("x", FLOAT, ["batch", 4])],
      outputs: [valueInfo("y", FLOAT, [1, 4])],
      initializers: [{ name: "shape", dims: [2], data_type: INT64, int64_data: [1, 4] }],
    }),
  );
}

/** The first half of the MLP's bytes. */
export function buildTruncatedModel(): Buffer {
  const bytes = buildMlp();
  return bytes.subarray(0, Math.floor(bytes.length / 2));
}

/** Bytes that are no protobuf at all (fixed seed, so every run sees the same file). */
export function buildGarbage(): Buffer {
  return Buffer.from(seededValues(4096, 7).map((v) => Math.floor((v + 1) * 128) & 0xff));
}

/** An input declaring a dimension of 2^40. */
export function buildAbsurdDimModel(): Buffer {
  return encodeModel(
    model({
      nodes: [{ op_type: "Relu", input: ["x"], output: ["y"] }],
      inputs: [valueInfo("x", FLOAT, [1, 2 ** 40])],
      outputs: [valueInfo("y", FLOAT, [1, 2 ** 40])],
    }),
  );
}

/** A node whose operator no runtime knows: com.example NoSuchOp. */
export function buildUnsupportedOpModel(): Buffer {
  return encodeModel(
    model(
      {
        nodes: [{ op_type: "NoSuchOp", domain: "com.example", input: ["x"], output: ["y"] }],
        inputs: [valueInfo("x", FLOAT, ["batch", 4])],
        outputs: [valueInfo("y", FLOAT, ["batch", 4])],
      },
      [{ domain: "com.example", version: 1 }],
    ),
  );
}

/** y = x * 3e38 and z = y - y over x[batch, 2]: any |x| > 1.2 overflows FP32 to ±Infinity in y and NaN in z. */
export function buildOverflowModel(): Buffer {
  return encodeModel(
    model({
      nodes: [
        { op_type: "Mul", input: ["x", "big"], output: ["y"] },
        { op_type: "Sub", input: ["y", "y"], output: ["z"] },
      ],
      inputs: [valueInfo("x", FLOAT, ["batch", 2])],
      outputs: [valueInfo("y", FLOAT, ["batch", 2]), valueInfo("z", FLOAT, ["batch", 2])],
      initializers: [floatTensor("big", [1], [3e38])],
    }),
  );
}

/** A Relu stamped with an opset or IR version newer than any onnxruntime release reads. */
export function buildFutureModel(which: "opset" | "ir"): Buffer {
  return encodeModel(
    model(
      { nodes: [{ op_type: "Relu", input: ["x"], output: ["y"] }], inputs: [valueInfo("x", FLOAT, [1, 4])], outputs: [valueInfo("y", FLOAT, [1, 4])] },
      [],
      which === "opset" ? { opset: 99 } : { irVersion: 99 },
    ),
  );
}

/** An initializer whose data is said to live at ../../etc/passwd. */
export function buildExternalDataEscapeModel(): Buffer {
  return buildExternalDataModel("../../etc/passwd");
}

/** x[4,4] + w, with w's 64 bytes of data in the file at `location`. */
export function buildExternalDataModel(location: string): Buffer {
  return encodeModel(
    model({
      nodes: [{ op_type: "Add", input: ["x", "w"], output: ["y"] }],
      inputs: [valueInfo("x", FLOAT, [4, 4])],
      outputs: [valueInfo("y", FLOAT, [4, 4])],
      initializers: [
        {
          name: "w",
          dims: [4, 4],
          data_type: FLOAT,
          data_location: 1,
          external_data: [
            { key: "location", value: location },
            { key: "offset", value: "0" },
            { key: "length", value: "64" },
          ],
        },
      ],
    }),
  );
}

/** The bytes numpy.save writes for one C-ordered little-endian array (format version 1.0). */
export function encodeNpy(descr: string, shape: number[], data: ArrayBufferView, { fortranOrder = false } = {}): Buffer {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(", ");
  let header = `{'descr': '${descr}', 'fortran_order': ${fortranOrder ? "True" : "False"}, 'shape': (${dims}), }`;
  header = header.padEnd(Math.ceil((header.length + 11) / 64) * 64 - 11) + "\n";
  const preamble = Buffer.alloc(10);
  preamble.write("\x93NUMPY", 0, "latin1");
  preamble[6] = 1;
  preamble[7] = 0;
  preamble.writeUInt16LE(header.length, 8);
  return Buffer.concat([preamble, Buffer.from(header, "latin1"), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/**
 * A tiny image encoder shaped as exported CLIP image encoders are: image[batch, 3, height, width]
 * (float, normalised RGB) → Conv(3→dims, 3×3, stride 2) → Relu → GlobalAveragePool → Flatten →
 * embedding[batch, dims]. `batch` 1 fixes the batch as some exporters do.
 */
export function buildImageEncoder({ width = 16, height = 16, dims = 8, batch = "batch" }: { width?: number; height?: number; dims?: number; batch?: string | number } = {}): Buffer {
  return encodeModel(
    model({
      nodes: [
        {
          op_type: "Conv",
          input: ["image", "w", "b"],
          output: ["c"],
          attribute: [
            { name: "kernel_shape", type: ATTR_INTS, ints: [3, 3] },
            { name: "strides", type: ATTR_INTS, ints: [2, 2] },
            { name: "pads", type: ATTR_INTS, ints: [1, 1, 1, 1] },
          ],
        },
        { op_type: "Relu", input: ["c"], output: ["r"] },
        { op_type: "GlobalAveragePool", input: ["r"], output: ["p"] },
        { op_type: "Flatten", input: ["p"], output: ["embedding"], attribute: [{ name: "axis", type: ATTR_INT, i: 1 }] },
      ],
      inputs: [valueInfo("image", FLOAT, [batch, 3, height, width])],
      outputs: [valueInfo("embedding", FLOAT, [batch, dims])],
      initializers: [floatTensor("w", [dims, 3, 3, 3], seededValues(dims * 27, 11)), floatTensor("b", [dims], seededValues(dims, 12).map((x) => x + 1))],
    }),
  );
}
