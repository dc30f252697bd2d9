import { countUploadBytes } from "../metrics/process-metrics";

// Upload bytes are counted where they arrive, as the handler reads them: what came over the
// network, whether or not the upload was then accepted.

export type UploadKind = Parameters<typeof countUploadBytes>[0];

/** A request body that adds each piece to the upload metrics as it is read. */
export function countedBody(body: ReadableStream<Uint8Array> | null, kind: UploadKind): ReadableStream<Uint8Array> | null {
  if (!body) return null;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        countUploadBytes(kind, chunk.byteLength);
        out.enqueue(chunk);
      },
    }),
  );
}

/** The same request with its body counted, for handlers that take the whole request (tus). */
export function withCountedBody(request: Request, kind: UploadKind): Request {
  if (!request.body) return request;
  return new Request(request, { body: countedBody(request.body, kind), duplex: "half" } as RequestInit);
}
