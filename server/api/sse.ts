import { env } from "../env";
import { toHttpError } from "../errors";
import type { JobEventDto } from "../jobs/jobs.schemas";

/**
 * Streams events as text/event-stream with heartbeats. Closes when the client goes away
 * (request.signal) or when the stream ends or fails; a failure is sent as an `error` event.
 */
export function sseResponse(request: Request, source: (signal: AbortSignal) => AsyncGenerator<JobEventDto>, eventId: (e: JobEventDto) => string): Response {
  const controller = new AbortController();
  const abort = () => controller.abort();
  request.signal.addEventListener("abort", abort, { once: true });
  const encoder = new TextEncoder();
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
          send(`id: ${eventId(event)}\nevent: job\ndata: ${JSON.stringify(event)}\n\n`);
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
