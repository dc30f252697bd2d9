import protobuf from "protobufjs";

/**
 * The part of onnx.proto that Gantry reads and the tests write. Field numbers are the
 * official ones; fields left out are skipped when decoding, so any real model still decodes.
 */
const onnxProto = `
syntax = "proto2";
package onnx;

message AttributeProto {
  enum AttributeType {
    UNDEFINED = 0; FLOAT = 1; INT = 2; STRING = 3; TENSOR = 4; GRAPH = 5; SPARSE_TENSOR = 11;
    FLOATS = 6; INTS = 7; STRINGS = 8; TENSORS = 9; GRAPHS = 10; SPARSE_TENSORS = 12; TYPE_PROTO = 13; TYPE_PROTOS = 14;
  }
  optional string name = 1;
  optional string ref_attr_name = 21;
  optional string doc_string = 13;
  optional AttributeType type = 20;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  optional GraphProto g = 6;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
}

message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  optional string domain = 7;
  repeated AttributeProto attribute = 5;
  optional string doc_string = 6;
}

message ModelProto {
  optional int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated StringStringEntryProto metadata_props = 14;
}

message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}

message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}

message TensorProto {
  enum DataLocation { DEFAULT = 0; EXTERNAL = 1; }
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional string doc_string = 12;
  optional bytes raw_data = 9;
  repeated StringStringEntryProto external_data = 13;
  optional DataLocation data_location = 14;
  repeated double double_data = 10 [packed = true];
  repeated uint64 uint64_data = 11 [packed = true];
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    optional string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  message Sequence { optional TypeProto elem_type = 1; }
  message Map { optional int32 key_type = 1; optional TypeProto value_type = 2; }
  oneof value {
    Tensor tensor_type = 1;
    Sequence sequence_type = 4;
    Map map_type = 5;
  }
  optional string denotation = 6;
}

message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}
`;

const root = protobuf.parse(onnxProto, { keepCase: true }).root;
const ModelProto = root.lookupType("onnx.ModelProto");
const ValueInfoProto = root.lookupType("onnx.ValueInfoProto");

// Plain-object shapes of the decoded messages (int64 as number, bytes as Uint8Array).
export type OnnxEntry = { key?: string; value?: string };
export type OnnxDim = { dim_value?: number; dim_param?: string; denotation?: string };
export type OnnxType = {
  tensor_type?: { elem_type?: number; shape?: { dim?: OnnxDim[] } };
  sequence_type?: { elem_type?: OnnxType };
  map_type?: { key_type?: number; value_type?: OnnxType };
};
export type OnnxValueInfo = { name?: string; type?: OnnxType; doc_string?: string };
export type OnnxTensor = {
  name?: string;
  dims?: number[];
  data_type?: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  int32_data?: number[];
  int64_data?: number[];
  double_data?: number[];
  external_data?: OnnxEntry[];
  data_location?: number;
};
export type OnnxAttribute = {
  name?: string;
  type?: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: OnnxTensor;
  g?: OnnxGraph;
  floats?: number[];
  ints?: number[];
  tensors?: OnnxTensor[];
  graphs?: OnnxGraph[];
};
export type OnnxNode = { input?: string[]; output?: string[]; name?: string; op_type?: string; domain?: string; attribute?: OnnxAttribute[] };
export type OnnxGraph = {
  name?: string;
  node?: OnnxNode[];
  initializer?: OnnxTensor[];
  input?: OnnxValueInfo[];
  output?: OnnxValueInfo[];
  value_info?: OnnxValueInfo[];
};
export type OnnxModel = {
  ir_version?: number;
  opset_import?: Array<{ domain?: string; version?: number }>;
  producer_name?: string;
  producer_version?: string;
  domain?: string;
  model_version?: number;
  doc_string?: string;
  graph?: OnnxGraph;
  metadata_props?: OnnxEntry[];
};

/** Decodes ONNX protobuf bytes; throws protobufjs's error when the bytes are not a valid message. */
export function decodeModel(bytes: Uint8Array): OnnxModel {
  const message = ModelProto.decode(bytes);
  return ModelProto.toObject(message, { longs: Number, enums: Number, arrays: false, defaults: false }) as OnnxModel;
}

/** Decodes one graph input or output (a ValueInfoProto); throws protobufjs's error on bad bytes. */
export function decodeValueInfo(bytes: Uint8Array): OnnxValueInfo {
  const message = ValueInfoProto.decode(bytes);
  return ValueInfoProto.toObject(message, { longs: Number, enums: Number, arrays: false, defaults: false }) as OnnxValueInfo;
}

/** Encodes a model given as a plain object (the shape decodeModel returns). */
export function encodeModel(model: OnnxModel): Buffer {
  const message = ModelProto.fromObject(model);
  return Buffer.from(ModelProto.encode(message).finish());
}

/** ONNX TensorProto.DataType codes and the names Gantry shows for them. */
export const onnxElementTypes: Record<number, string> = {
  1: "float32",
  2: "uint8",
  3: "int8",
  4: "uint16",
  5: "int16",
  6: "int32",
  7: "int64",
  8: "string",
  9: "bool",
  10: "float16",
  11: "float64",
  12: "uint32",
  13: "uint64",
  14: "complex64",
  15: "complex128",
  16: "bfloat16",
};
