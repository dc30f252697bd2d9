import type { KeyValue, SchemaElement } from "hyparquet";
import { parquetWriteBuffer } from "hyparquet-writer";

// Parquet the way pyarrow writes LeRobot's files: every column OPTIONAL, lists as the standard
// three-level LIST groups (list / element), int64 and float32/float64 leaves, SNAPPY pages.

export type Leaf = "INT64" | "FLOAT" | "DOUBLE" | "STRING";

export interface Column {
  name: string;
  leaf: Leaf;
  /** 0: a scalar per row; 1: a list; 3: a list of lists of lists (image stats). */
  depth: number;
  data: unknown[];
}

function leafElement(name: string, leaf: Leaf): SchemaElement {
  if (leaf === "STRING") return { name, repetition_type: "OPTIONAL", type: "BYTE_ARRAY", converted_type: "UTF8", logical_type: { type: "STRING" } };
  return { name, repetition_type: "OPTIONAL", type: leaf };
}

function columnSchema(name: string, leaf: Leaf, depth: number): SchemaElement[] {
  if (depth === 0) return [leafElement(name, leaf)];
  return [
    { name, repetition_type: "OPTIONAL", num_children: 1, converted_type: "LIST", logical_type: { type: "LIST" } },
    { name: "list", repetition_type: "REPEATED", num_children: 1 },
    ...columnSchema("element", leaf, depth - 1),
  ];
}

function toInt64(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toInt64);
  if (typeof value === "number") return BigInt(Math.round(value));
  return value;
}

/** Another codec than SNAPPY, and how to compress with it: what other tools write. */
export interface ParquetCompression {
  codec: "GZIP" | "BROTLI";
  compress: (input: Uint8Array) => Uint8Array;
}

export function parquetBytes(columns: Column[], { rowGroupSize, kvMetadata, compression }: { rowGroupSize?: number[]; kvMetadata?: KeyValue[]; compression?: ParquetCompression } = {}): Uint8Array {
  const schema: SchemaElement[] = [{ name: "schema", num_children: columns.length }, ...columns.flatMap((c) => columnSchema(c.name, c.leaf, c.depth))];
  const columnData = columns.map((c) => ({ name: c.name, data: c.leaf === "INT64" ? (c.data.map(toInt64) as bigint[]) : (c.data as number[]) }));
  const buffer = parquetWriteBuffer({ schema, columnData, rowGroupSize: rowGroupSize?.length ? rowGroupSize : undefined, kvMetadata, codec: compression?.codec ?? "SNAPPY", ...(compression ? { compressors: { [compression.codec]: compression.compress } } : {}) });
  return new Uint8Array(buffer);
}

/** The `huggingface` metadata the datasets library writes beside the data, from LeRobot features. */
export function huggingfaceMetadata(features: Record<string, { dtype: string; shape: number[] }>, vectorKeys: string[] = ["action", "observation.state"]): KeyValue {
  const hf: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(features)) {
    if (f.dtype === "video" || f.dtype === "image") continue;
    hf[key] = key === "timestamp" || key.endsWith("_index") || key === "index" ? { dtype: f.dtype, _type: "Value" } : f.shape[0] === 1 && !vectorKeys.includes(key) ? { dtype: f.dtype, _type: "Value" } : { feature: { dtype: f.dtype, _type: "Value" }, length: f.shape[0], _type: "List" };
  }
  return { key: "huggingface", value: JSON.stringify({ info: { features: hf } }) };
}

/** pandas' metadata for tasks.parquet, whose index (the task text) is a column of its own. */
export function pandasTasksMetadata(): KeyValue {
  return {
    key: "pandas",
    value: JSON.stringify({
      index_columns: ["__index_level_0__"],
      column_indexes: [{ name: null, field_name: null, pandas_type: "unicode", numpy_type: "object", metadata: { encoding: "UTF-8" } }],
      columns: [
        { name: "task_index", field_name: "task_index", pandas_type: "int64", numpy_type: "int64", metadata: null },
        { name: null, field_name: "__index_level_0__", pandas_type: "unicode", numpy_type: "object", metadata: null },
      ],
      attributes: {},
    }),
  };
}
