// Files people send instead of a model, told apart by their first bytes so the message says
// what the file is and how to get the model. None of these can be the start of an ONNX file:
// "v", "<" and "{" are protobuf tags no ModelProto field has.

/** Bytes enough to tell these files apart. */
export const SNIFF_BYTES = 64;

/**
 * Why `head` (the file's first bytes) is not a model, in a sentence with the way out; null when
 * it may be one. Only plain text is named: its first bytes (after a UTF-8 byte order mark) must
 * all be printable ASCII, so bytes that merely begin with "{" are left to the model check.
 */
export function recogniseNotAModel(head: Uint8Array): string | null {
  const hasBom = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf;
  const bytes = head.subarray(hasBom ? 3 : 0, SNIFF_BYTES);
  if (!bytes.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x09 || b === 0x0a || b === 0x0d)) return null;
  const start = Buffer.from(bytes).toString("latin1").trimStart();
  if (start.startsWith("version https://git-lfs.github.com/spec/")) {
    return "This is a Git LFS pointer (a small text file standing in for the model), not the model: the repository was cloned or downloaded without Git LFS. Run `git lfs pull` in it and send the .onnx file itself.";
  }
  if (/^<(!doctype html|html[\s>])/i.test(start)) {
    return "This is a web page, not an ONNX model. For a file on Hugging Face use its download link (…/resolve/main/model.onnx), not its page (…/blob/main/model.onnx).";
  }
  if (/^[{[]/.test(start)) return "This is JSON text, not an ONNX model (often an error message from the server the file was fetched from); open it to see what it says.";
  return null;
}
