import { decodeValueInfo, onnxElementTypes, type OnnxValueInfo } from "./onnx-proto";
import type { Signature, TensorSpec } from "./validation.schemas";

// A model's inputs and outputs, read from its bytes as they stream past: a test vector given
// with an upload or a re-validation is checked against them before anything is stored. Only
// the graph's input and output descriptions and the initializers' names are kept; the weights
// are skipped as they go by, so a multi-gigabyte model needs no more memory than a small one.

/** One graph input or output as the registry shows it: a string in the shape is a symbolic dimension ("?" when unnamed). */
export function tensorSpec(info: OnnxValueInfo): TensorSpec {
  const name = info.name ?? "";
  const tensor = info.type?.tensor_type;
  if (!tensor) return { name, type: info.type?.sequence_type ? "sequence" : info.type?.map_type ? "map" : "unknown", shape: [] };
  const type = onnxElementTypes[tensor.elem_type ?? 0] ?? `type ${tensor.elem_type ?? 0}`;
  // A negative size (some converters write -1) means what an unnamed one does: any size.
  return { name, type, shape: (tensor.shape?.dim ?? []).map((d) => d.dim_param || (d.dim_value !== undefined && d.dim_value >= 0 ? d.dim_value : "?")) };
}

/** A graph input or output description larger than this is not a real one. */
const MAX_DESCRIPTION_BYTES = 16 * 1024 * 1024;

// Field numbers of onnx.proto: ModelProto.graph, GraphProto.initializer/input/output, TensorProto.name.
const MODEL_GRAPH = 7;
const GRAPH_INITIALIZER = 5;
const GRAPH_INPUT = 11;
const GRAPH_OUTPUT = 12;
const TENSOR_NAME = 8;

type Frame = { kind: "model" | "graph" | "tensor"; end: number; name?: string };
type Capture = { what: "input" | "output" | "name"; parts: Uint8Array[] };

/**
 * Push the model's bytes in order, then `finish()`: the signature, or why the bytes are not an
 * ONNX model whose inputs can be read. Walks the protobuf wire format, descending only into the
 * graph and its initializers.
 */
export class SignatureReader {
  private pos = 0;
  private readonly frames: Frame[] = [{ kind: "model", end: Number.POSITIVE_INFINITY }];
  private state: "tag" | "length" | "varint" | "skip" | "capture" = "tag";
  private varint = 0;
  private shift = 0;
  private field = 0;
  private remaining = 0;
  private capture: Capture | null = null;
  private hasGraph = false;
  private readonly inputs: OnnxValueInfo[] = [];
  private readonly outputs: OnnxValueInfo[] = [];
  private readonly initializers = new Set<string>();
  private error: string | null = null;

  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length && this.error === null) {
      if (this.state === "skip" || this.state === "capture") {
        const n = Math.min(this.remaining, chunk.length - i);
        if (this.state === "capture") this.capture!.parts.push(chunk.slice(i, i + n));
        i += n;
        this.pos += n;
        this.remaining -= n;
        if (this.remaining === 0) this.endField();
        continue;
      }
      if (this.state === "tag" && this.shift === 0 && !this.closeFrames()) break;
      const byte = chunk[i++];
      this.pos++;
      this.varint += (byte & 0x7f) * 2 ** this.shift;
      this.shift += 7;
      if (byte & 0x80) {
        if (this.shift > 63) this.error = "a number in it runs on past ten bytes";
        continue;
      }
      const value = this.varint;
      this.varint = 0;
      this.shift = 0;
      if (this.state === "tag") this.onTag(value);
      else if (this.state === "length") this.onLength(value);
      else this.state = "tag";
    }
  }

  finish(): { signature: Signature } | { error: string } {
    if (this.error === null && this.state === "tag" && this.shift === 0) this.closeFrames();
    if (this.error !== null) return { error: `its bytes do not decode as ONNX protobuf (${this.error})` };
    if (this.state !== "tag" || this.shift !== 0 || this.frames.length > 1) return { error: "the file ends before the model does — it looks truncated" };
    if (!this.hasGraph) return { error: "it has no graph" };
    if (this.outputs.length === 0) return { error: "it has no graph outputs" };
    return {
      signature: {
        inputs: this.inputs.filter((v) => !this.initializers.has(v.name ?? "")).map(tensorSpec),
        outputs: this.outputs.map(tensorSpec),
      },
    };
  }

  /** Leaves every message that ends here; false when one was overrun. */
  private closeFrames(): boolean {
    for (let top = this.frames.at(-1)!; this.pos >= top.end; top = this.frames.at(-1)!) {
      if (this.pos > top.end) {
        this.error = "a field runs past the end of the message that holds it";
        return false;
      }
      this.frames.pop();
      if (top.kind === "tensor" && top.name !== undefined) this.initializers.add(top.name);
    }
    return true;
  }

  private onTag(tag: number): void {
    this.field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (this.field === 0) this.error = "a field numbered 0";
    else if (wireType === 0) this.state = "varint";
    else if (wireType === 1 || wireType === 5) this.startSkip(wireType === 1 ? 8 : 4);
    else if (wireType === 2) this.state = "length";
    else this.error = `wire type ${wireType}, which ONNX does not use`;
  }

  private onLength(length: number): void {
    const top = this.frames.at(-1)!;
    if (this.pos + length > top.end) {
      this.error = "a field runs past the end of the message that holds it";
      return;
    }
    const end = this.pos + length;
    if (top.kind === "model" && this.field === MODEL_GRAPH) {
      this.hasGraph = true;
      this.frames.push({ kind: "graph", end });
      this.state = "tag";
    } else if (top.kind === "graph" && this.field === GRAPH_INITIALIZER) {
      this.frames.push({ kind: "tensor", end });
      this.state = "tag";
    } else if ((top.kind === "graph" && (this.field === GRAPH_INPUT || this.field === GRAPH_OUTPUT)) || (top.kind === "tensor" && this.field === TENSOR_NAME)) {
      if (length > MAX_DESCRIPTION_BYTES) {
        this.error = `a graph ${this.field === GRAPH_OUTPUT ? "output" : "input"} described in ${length} bytes`;
        return;
      }
      this.capture = { what: top.kind === "tensor" ? "name" : this.field === GRAPH_INPUT ? "input" : "output", parts: [] };
      this.state = "capture";
      this.remaining = length;
      if (length === 0) this.endField();
    } else this.startSkip(length);
  }

  private startSkip(length: number): void {
    this.state = "skip";
    this.remaining = length;
    if (length === 0) this.endField();
  }

  private endField(): void {
    const capture = this.capture;
    this.state = "tag";
    this.capture = null;
    if (!capture) return;
    const bytes = Buffer.concat(capture.parts);
    if (capture.what === "name") {
      this.frames.at(-1)!.name = bytes.toString("utf8");
      return;
    }
    try {
      (capture.what === "input" ? this.inputs : this.outputs).push(decodeValueInfo(bytes));
    } catch (error) {
      this.error = `a graph ${capture.what} does not decode: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
}

/** The signature of the model a stream of bytes holds, or why it cannot be read. */
export async function readSignature(source: AsyncIterable<Uint8Array>): Promise<{ signature: Signature } | { error: string }> {
  const reader = new SignatureReader();
  for await (const chunk of source) reader.push(chunk);
  return reader.finish();
}
