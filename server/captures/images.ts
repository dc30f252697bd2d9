import { AppError } from "../errors";

// A camera frame is checked from its bytes alone, never from what the sender says it is: the
// magic number names the format, the header gives the size, and the structure must run to the
// file's end, so a truncated upload (a dropped Wi-Fi link mid-frame) is refused rather than
// stored as a grey half-image that a trainer would learn from.

export interface ImageInfo {
  format: "jpeg" | "png";
  width: number;
  height: number;
}

/** Larger than any camera a robot carries; a header claiming more is corrupt or hostile. */
export const MAX_IMAGE_SIDE = 16_384;

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const refuse = (message: string) => new AppError("BAD_REQUEST", message);

function checkSides(format: string, width: number, height: number): void {
  if (width < 1 || height < 1 || width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE) {
    throw refuse(`The ${format} says it is ${width}×${height} pixels; a frame must be 1 to ${MAX_IMAGE_SIDE} pixels on each side`);
  }
}

/** Walks the PNG's chunks from the signature to IEND, which must end the file. */
function inspectPng(b: Buffer): ImageInfo {
  if (b.length < 8 + 25 || b.toString("latin1", 12, 16) !== "IHDR" || b.readUInt32BE(8) !== 13) throw refuse("The PNG has no IHDR header where PNG puts it; the file is corrupt");
  const width = b.readUInt32BE(16);
  const height = b.readUInt32BE(20);
  checkSides("PNG", width, height);
  let at = 8;
  for (;;) {
    if (at + 12 > b.length) throw refuse("The PNG is cut short before its IEND chunk; send the whole file");
    const length = b.readUInt32BE(at);
    const type = b.toString("latin1", at + 4, at + 8);
    const next = at + 12 + length;
    if (length > 0x7fffffff || next > b.length) throw refuse(`The PNG is cut short inside its ${/^[A-Za-z]{4}$/.test(type) ? type : "a"} chunk; send the whole file`);
    if (type === "IEND") {
      if (next !== b.length) throw refuse(`The PNG has ${b.length - next} bytes after its IEND chunk; send the image alone`);
      return { format: "png", width, height };
    }
    at = next;
  }
}

// SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
const isStartOfFrame = (marker: number) => marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;

/** Reads the JPEG's segments up to its frame header (SOF) for the size; the file must end with EOI. */
function inspectJpeg(b: Buffer): ImageInfo {
  // Some cameras pad a frame with zeros after EOI; anything else after it is not an image.
  let end = b.length;
  while (end > 2 && b[end - 1] === 0) end--;
  if (end < 4 || b[end - 2] !== 0xff || b[end - 1] !== 0xd9) throw refuse("The JPEG does not end with its end-of-image marker: it was cut short; send the whole file");
  let at = 2;
  while (at < end) {
    if (b[at] !== 0xff) throw refuse(`The JPEG is corrupt: no segment marker at byte ${at}`);
    while (at < end && b[at] === 0xff) at++; // fill bytes
    const marker = b[at++];
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // no length
    if (marker === 0xd9 || marker === 0xda) break; // end of image, or scan data before any frame header
    if (at + 2 > end) break;
    const length = b.readUInt16BE(at);
    if (length < 2 || at + length > end) throw refuse("The JPEG is cut short inside a header segment; send the whole file");
    if (isStartOfFrame(marker)) {
      if (length < 8) throw refuse("The JPEG's frame header is too short; the file is corrupt");
      const height = b.readUInt16BE(at + 3);
      const width = b.readUInt16BE(at + 5);
      // Height 0 means "set by a DNL marker later", which no camera uses; refused as a bad size.
      checkSides("JPEG", width, height);
      return { format: "jpeg", width, height };
    }
    at += length;
  }
  throw refuse("The JPEG has no frame header (SOF) before its image data; the file is corrupt");
}

/** The format and size of a JPEG or PNG frame, or a 400 saying what is wrong with it. */
export function inspectImage(bytes: Uint8Array): ImageInfo {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length === 0) throw refuse("The frame is empty; send a JPEG or PNG image as the body (or as the form field `image`)");
  if (b.length >= 8 && b.subarray(0, 8).equals(PNG_MAGIC)) return inspectPng(b);
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return inspectJpeg(b);
  throw refuse("The frame is neither a JPEG nor a PNG (judged by its first bytes, not its name or type); send the camera's JPEG or PNG as it is");
}

export const imageContentType = { jpeg: "image/jpeg", png: "image/png" } as const;
