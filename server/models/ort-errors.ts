// onnxruntime's error messages are written for its own developers: the C++ source line and
// function signature that raised them, the path of the file it was given (a temporary one
// here), its own "[ONNXRuntimeError] : 1 : FAIL :" prefix. People get the part that says what
// is wrong with their model, with a plainer sentence for the failures seen most often.

const PLAIN: Array<[RegExp, (m: RegExpExecArray) => string]> = [
  [/Unsupported model IR version: (\d+), max supported IR version: (\d+)/i, (m) => `the model's IR version is ${m[1]}, newer than this onnxruntime reads (up to ${m[2]}) — export it with an older ONNX version`],
  [/Opset (\d+) is under development.*?domain ([\w.]+) is till opset (\d+)/is, (m) => `the model uses opset ${m[1]} of ${m[2]}, newer than this onnxruntime supports (up to ${m[3]}) — export it with opset ${m[3]} or lower`],
  [/protobuf parsing failed/i, () => "the file is not a readable ONNX model (its protobuf does not parse) — it may be truncated or not an ONNX file"],
  [/([\w.]+):(\w+)\(-?\d+\) is not a registered function\/op/, (m) => `the model uses operator ${m[2]} of domain ${m[1]}, which this onnxruntime does not have (${m[1]}:${m[2]} is not a registered function/op)`],
];

/** A C++ source location with the function it is in: `/onnxruntime_src/x/y.cc:46 void onnxruntime::f(int, …) `. */
const SOURCE_LOCATION = /(?:\/[\w.+-]+)*\/?[\w.+-]+\.(?:cc|cpp|cxx|h|hpp|cu):\d+\s*/g;

function dropSignatureAfter(text: string, from: number): number {
  // The signature runs to the parenthesis that closes its argument list (plus a trailing
  // `const`); it is there only when a `::` comes before that first parenthesis.
  const open = text.indexOf("(", from);
  if (open === -1 || !text.slice(from, open).includes("::")) return from;
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === "(") depth++;
    else if (text[i] === ")" && --depth === 0) {
      const rest = /^\)(?:\s*const)?\s*/.exec(text.slice(i));
      return i + (rest?.[0].length ?? 1);
    }
  }
  return from;
}

function stripSourceLocations(text: string): string {
  let out = "";
  let last = 0;
  for (const match of text.matchAll(SOURCE_LOCATION)) {
    const start = match.index;
    if (start < last) continue;
    out += text.slice(last, start);
    last = dropSignatureAfter(text, start + match[0].length);
  }
  return out + text.slice(last);
}

/**
 * onnxruntime's message, for a person: no source lines, C++ signatures, status prefixes or
 * file paths; `fileLabel` stands in for the model's path ("the model" by default).
 */
export function describeOrtError(error: unknown, { fileLabel = "the model" }: { fileLabel?: string } = {}): string {
  let text = error instanceof Error ? error.message : String(error);
  text = text.replace(/\x1b\[[0-9;]*m/g, "");
  text = text.replace(/\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*/g, "");
  text = text.replace(/^Load model from .*? failed:\s*/s, "");
  text = stripSourceLocations(text);
  // Any path left (the temporary file, a path inside onnxruntime's build) says nothing to the reader.
  text = text.replace(/(?:^|(?<=[\s"'(]))\/(?:[\w.+-]+\/)*[\w.+-]+/g, fileLabel);
  // An assertion's condition ("axis == 1 || axis == largest was false.") comes before its explanation.
  text = text.replace(/(?<=^|:\s)[^.:]*? was false\.\s*/, "");
  text = text.replace(/\s+/g, " ").trim();
  for (const [pattern, plain] of PLAIN) {
    const match = pattern.exec(text);
    if (match) return plain(match);
  }
  text = text.replace(/^Non-zero status code returned while running (\w+) node\. Name:'([^']*)' Status Message:\s*/, (_m, op: string, node: string) => `${op} node${node ? ` "${node}"` : ""} failed: `);
  return (text || "onnxruntime gave no reason").slice(0, 600);
}
