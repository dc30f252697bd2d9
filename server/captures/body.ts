import { AppError } from "../errors";
import { formatBytes } from "../storage/blob-store";

// Request bodies of the capture endpoints (frames, snapshots) are held in memory whole — a
// frame must be seen entire to be checked, a snapshot is parsed and converted — so each is
// refused by its declared length before a byte is read, and cut off as soon as more arrives.

export interface UploadBody {
  body: ReadableStream<Uint8Array> | null;
  contentType: string | null;
  /** Content-Length, when the sender gave one. */
  declaredBytes: number | null;
}

export function tooLarge(what: string, maxBytes: number, setting: string): AppError {
  return new AppError("PAYLOAD_TOO_LARGE", `The ${what} is larger than the ${formatBytes(maxBytes)} ${setting} allows; send a smaller one`);
}

/** The whole body, at most `maxBytes`, or a 413 naming the setting. */
export async function readBounded(upload: UploadBody, maxBytes: number, what: string, setting: string): Promise<Uint8Array> {
  if ((upload.declaredBytes ?? 0) > maxBytes) throw tooLarge(what, maxBytes, setting);
  if (!upload.body) return new Uint8Array(0);
  const reader = upload.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge(what, maxBytes, setting);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size);
}

/** What a multipart form adds around a file: boundaries and part headers. */
const FORM_OVERHEAD_BYTES = 64 * 1024;

/**
 * A frame sent as the raw body, or as a multipart form: the field `image` (the earlier
 * clients' `file` too), else the form's only file.
 */
export async function readFrameUpload(upload: UploadBody, maxBytes: number): Promise<Uint8Array> {
  const type = upload.contentType?.split(";", 1)[0].trim().toLowerCase();
  if (type !== "multipart/form-data") return readBounded(upload, maxBytes, "frame", "CAPTURE_MAX_FRAME_BYTES");
  const raw = await readBounded(upload, maxBytes + FORM_OVERHEAD_BYTES, "frame", "CAPTURE_MAX_FRAME_BYTES");
  let form: FormData;
  try {
    form = await new Response(raw as Uint8Array<ArrayBuffer>, { headers: { "content-type": upload.contentType! } }).formData();
  } catch {
    throw new AppError("BAD_REQUEST", "The multipart form could not be read; send the frame as the field `image`, or as the raw body with Content-Type image/jpeg or image/png");
  }
  const files = [...form.entries()].filter((entry): entry is [string, File] => typeof entry[1] !== "string");
  const file = form.get("image") ?? form.get("file") ?? (files.length === 1 ? files[0][1] : null);
  if (!file || typeof file === "string") throw new AppError("BAD_REQUEST", "The form has no image: send the frame as the file field `image`");
  if (file.size > maxBytes) throw tooLarge("frame", maxBytes, "CAPTURE_MAX_FRAME_BYTES");
  return new Uint8Array(await file.arrayBuffer());
}
