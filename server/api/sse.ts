import { env } from "../env";
import { toHttpError } from "../errors";
import type { JobEventDto } from "../jobs/jobs.schemas";

// The hub hands the same event object to every subscriber: its frame is built and encoded
// once, not once per connection (a thousand watchers of one job share each frame).
const encoder = new TextEncoder();
const frames = new WeakMap<JobEventDto, Map<string, Uint8Array>>();

function frameOf(event: JobEventDto, id: string): Uint8Array {
  let byId = frames.get(event);
  if (!byId) frames.set(event, (byId = new Map()));
  let frame = byId.get(id);
  if (!frame) byId.set(id, (frame = encoder.encode(`id: ${id}\nevent: job\ndata: ${JSON.stringify(event)}\n\n`)));
  return frame;
}

/**
 * Streams events as text/event-stream with heartbeats. Closes when the client goes away
 * (request.signal) or when the stream ends or fails; a failure is sent as an `error` event.
 */
export function sseResponse(request: Request, source: (signal: AbortSignal) => AsyncGenerator<JobEventDto>, eventId: (e: JobEventDto) => string): Response {
  const controller = new AbortController();
  const abort = () => controller.abort();
  request.signal.addEventListener("abort", abort, { once: true });
  let heartbeat: ReturnType<typeof setInterval> | undefined;

  const stream = new ReadableStream<Uint8Array>({
    async start(out) {
      const send = (text: string) => {
        if (!controller.signal.aborted) out.enqueue(encoder.encode(text));
      };
      send(`retry: 2000\n: connected\n\n`);
      heartbeat = setInterval(() => send(`: heartbeat ${Date.now()}\n\n`), env().SSE_HEARTBEAT_MS);
      try {
        for await (const event of source(controller.signal)) {
          if (!controller.signal.aborted) out.enqueue(frameOf(event, eventId(event)));
        }
      } catch (error) {
        if (!controller.signal.aborted) send(`event: error\ndata: ${JSON.stringify(toHttpError(error))}\n\n`);
      } finally {
        clearInterval(heartbeat);
        request.signal.removeEventListener("abort", abort);
        try {
          out.close();
        } catch {
          // already closed by the client
        }
      }
    },
    cancel() {
      controller.abort();
      clearInterval(heartbeat);
    },
  });
  return new Response(stream, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache, no-transform", connection: "keep-alive", "x-accel-buffering": "no" },
  });
}

/** Last-Event-ID from the header (browsers' EventSource) or the query (`?lastEventId=`). */
export function lastEventId(request: Request): string | null {
  const raw = request.headers.get("last-event-id") ?? new URL(request.url).searchParams.get("lastEventId");
  return raw && /^\d{1,19}$/.test(raw) ? raw : null;
}
