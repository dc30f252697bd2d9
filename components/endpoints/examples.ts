import type { Signature, TensorSpec } from "@/server/models/validation.schemas";

// Copy-ready calls for one endpoint, written from its model's real input names, types and
// shapes. Symbolic dimensions are taken as 1 (one sample); inputs too large to write out
// inline are built in code (Python, TypeScript) or read from a file (curl).

/** Inputs with more values than this are not written out inline. */
export const INLINE_LIMIT = 64;

const oipTypes: Record<string, string> = {
  float32: "FP32",
  float64: "FP64",
  float16: "FP16",
  int8: "INT8",
  int16: "INT16",
  int32: "INT32",
  int64: "INT64",
  uint8: "UINT8",
  uint16: "UINT16",
  uint32: "UINT32",
  uint64: "UINT64",
  bool: "BOOL",
};

const numpyTypes: Record<string, string> = { float16: "float16", float32: "float32", float64: "float64", bool: "bool_" };

const typedArrays: Record<string, string> = {
  float32: "Float32Array",
  float64: "Float64Array",
  int8: "Int8Array",
  int16: "Int16Array",
  int32: "Int32Array",
  uint8: "Uint8Array",
  uint16: "Uint16Array",
  uint32: "Uint32Array",
};

export const oipDatatype = (type: string) => oipTypes[type] ?? type.toUpperCase();

/** The concrete shape of one sample: symbolic or unknown dimensions become 1. */
export function sampleShape(spec: Pick<TensorSpec, "shape">): number[] {
  return spec.shape.map((d) => (typeof d === "number" && d > 0 ? d : 1));
}

export const countOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function sampleValue(type: string): number | boolean {
  if (type === "bool") return false;
  if (type.startsWith("float")) return 0.5;
  return 1;
}

/** Nested arrays of `shape`, every element `value`. */
export function filled(shape: number[], value: number | boolean): unknown {
  if (shape.length === 0) return value;
  const [n, ...rest] = shape;
  return Array.from({ length: n }, () => filled(rest, value));
}

/** Example inputs for `/predict/{name}` and the try-it form: name → nested arrays of one sample. */
export function sampleInputs(signature: Signature): Record<string, unknown> {
  return Object.fromEntries(signature.inputs.map((i) => [i.name, filled(sampleShape(i), sampleValue(i.type))]));
}

const json = (value: unknown) => JSON.stringify(value);
const isSmall = (spec: TensorSpec) => countOf(sampleShape(spec)) <= INLINE_LIMIT;
/** A Python or TypeScript identifier made from an input name. */
function identifier(name: string, taken: Set<string>): string {
  let id = name.replace(/[^A-Za-z0-9_]/g, "_").replace(/^(?=\d)/, "_") || "x";
  while (taken.has(id)) id += "_";
  taken.add(id);
  return id;
}

/** Single-quoted for a POSIX shell. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export function curlExample({ signature, urls }: { signature: Signature; urls: { predict: string; infer: string } }): string {
  const auth = `-H "Authorization: Bearer $GANTRY_TOKEN"`;
  if (signature.inputs.every(isSmall)) {
    const body = json({ inputs: sampleInputs(signature) });
    return [`curl -sS -X POST ${shellQuote(urls.predict)} \\`, `  ${auth} \\`, `  -H "Content-Type: application/json" \\`, `  -d ${shellQuote(body)}`].join("\n");
  }
  const big = signature.inputs.filter((i) => !isSmall(i)).map((i) => `${i.name} has ${countOf(sampleShape(i)).toLocaleString("en")} values`);
  return [
    `# ${big.join(", ")}: too many to type here.`,
    `# Write the request to request.json (the Python example shows how), then:`,
    `curl -sS -X POST ${shellQuote(urls.infer)} \\`,
    `  ${auth} \\`,
    `  -H "Content-Type: application/json" \\`,
    `  --data-binary @request.json`,
  ].join("\n");
}

export function pythonExample({ signature, urls }: { signature: Signature; urls: { infer: string } }): string {
  const taken = new Set(["np", "requests", "os", "URL", "TOKEN", "payload", "response", "out"]);
  const vars = signature.inputs.map((i) => ({ spec: i, id: identifier(i.name, taken) }));
  const lines = [
    "import os",
    "",
    "import numpy as np",
    "import requests",
    "",
    `URL = ${json(urls.infer)}`,
    'TOKEN = os.environ["GANTRY_TOKEN"]  # an API token from Settings → API tokens',
    "",
    "# One sample; replace with your data.",
    ...vars.map(({ spec, id }) => {
      const shape = sampleShape(spec);
      const dtype = numpyTypes[spec.type] ?? spec.type;
      return `${id} = np.full(${json(shape).replace("[", "(").replace(/]$/, shape.length === 1 ? ",)" : ")")}, ${spec.type === "bool" ? "False" : sampleValue(spec.type)}, dtype=np.${dtype})`;
    }),
    "",
    "payload = {",
    '    "inputs": [',
    ...vars.map(({ spec, id }) => `        {"name": ${json(spec.name)}, "shape": list(${id}.shape), "datatype": ${json(oipDatatype(spec.type))}, "data": ${id}.flatten().tolist()},`),
    "    ]",
    "}",
    'response = requests.post(URL, json=payload, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)',
    "response.raise_for_status()",
    'for out in response.json()["outputs"]:',
    '    print(out["name"], np.array(out["data"]).reshape(out["shape"]))',
  ];
  return lines.join("\n");
}

export function typescriptExample({ signature, urls }: { signature: Signature; urls: { infer: string } }): string {
  const taken = new Set(["url", "token", "response", "outputs", "output"]);
  const vars = signature.inputs.map((i) => ({ spec: i, id: identifier(i.name, taken) }));
  const lines = [
    `const url = ${json(urls.infer)};`,
    "const token = process.env.GANTRY_TOKEN; // an API token from Settings → API tokens",
    "",
    "// One sample, row-major; replace with your data.",
    ...vars.map(({ spec, id }) => {
      const shape = sampleShape(spec);
      const count = countOf(shape);
      const value = sampleValue(spec.type);
      const maker = typedArrays[spec.type] ? `new ${typedArrays[spec.type]}(${count}).fill(${value})` : `Array.from({ length: ${count} }, () => ${json(value)})`;
      return `const ${id} = { shape: ${json(shape)}, data: ${maker} };`;
    }),
    "",
    "const response = await fetch(url, {",
    '  method: "POST",',
    '  headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },',
    "  body: JSON.stringify({",
    "    inputs: [",
    ...vars.map(({ spec, id }) => `      { name: ${json(spec.name)}, shape: ${id}.shape, datatype: ${json(oipDatatype(spec.type))}, data: Array.from(${id}.data) },`),
    "    ],",
    "  }),",
    "});",
    "if (!response.ok) throw new Error(`${response.status}: ${await response.text()}`);",
    "const { outputs } = (await response.json()) as { outputs: Array<{ name: string; shape: number[]; data: number[] }> };",
    "for (const output of outputs) console.log(output.name, output.shape, output.data);",
  ];
  return lines.join("\n");
}
