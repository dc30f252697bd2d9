import { z } from "zod";
import { env } from "../env";
import { INT_COLUMN_MAX } from "../db/limits";
import { AppError, toHttpError } from "../errors";
import { openSseSubscriber } from "../metrics/process-metrics";

// The hub hands the same event object to every subscriber: its frame is built and encoded
// once, not once per connection (a thousand watchers of one job share each frame).
const encoder = new TextEncoder();
const frames = new WeakMap<object, Map<string, Uint8Array>>();

function frameOf(event: object, id: string, name: string): Uint8Array {
  let byId = frames.get(event);
  if (!byId) frames.set(event, (byId = new Map()));
  let frame = byId.get(id);
  if (!frame) byId.set(id, (frame = encoder.encode(`id: ${id}\nevent: ${name}\ndata: ${JSON.stringify(event)}\n\n`)));
  return frame;
}

/**
 * Streams events as text/event-stream with heartbeats. The next event is taken only when
 * the client has read the last (pull), so a stalled client holds nothing but its position;
 * the source catches it up from the database. A source may yield batches (arrays) of events
 * that were waiting together: each batch goes out in one write, so a burst costs a subscriber
 * one write, not one per event. Closes when the client goes away or the
 * source ends (saying so with an `end` event); a failure is sent as an `error` event first.
 */
export function sseResponse<T extends object>(request: Request, events: AsyncGenerator<T | T[]>, eventId: (e: T) => string, controller: AbortController, eventName = "job"): Response {
  // Counted from here until it ends, whichever way: the source ends, the client goes, or it fails.
  const closeSubscriber = openSseSubscriber(eventName);
  const abort = () => {
    controller.abort();
    closeSubscriber();
  };
  request.signal.addEventListener("abort", abort, { once: true });
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let pending: Uint8Array[] = [encoder.encode("retry: 2000\n: connected\n\n")];
  let done = false;

  const finish = () => {
    done = true;
    closeSubscriber();
    clearInterval(heartbeat);
    request.signal.removeEventListener("abort", abort);
    controller.abort();
    void events.return(undefined);
  };

  const stream = new ReadableStream<Uint8Array>(
    {
      start(out) {
        // Heartbeats go out even while the next event is awaited; they are tiny and bounded.
        heartbeat = setInterval(() => {
          if (!done && (out.desiredSize ?? 0) > 0) out.enqueue(encoder.encode(`: heartbeat ${Date.now()}\n\n`));
        }, env().SSE_HEARTBEAT_MS);
      },
      async pull(out) {
        if (pending.length) {
          for (const chunk of pending) out.enqueue(chunk);
          pending = [];
          return;
        }
        try {
          let next = await events.next();
          // An empty batch writes nothing: the next one is awaited instead.
          while (!next.done && Array.isArray(next.value) && next.value.length === 0 && !done) next = await events.next();
          if (done) return;
          if (next.done) {
            // The source has nothing more, ever (a job's stream after its final event): an
            // EventSource should close rather than reconnect.
            if (!controller.signal.aborted) out.enqueue(encoder.encode("event: end\ndata: {}\n\n"));
            finish();
            out.close();
            return;
          }
          // A batch (events that were waiting together) goes out in one write.
          const items = Array.isArray(next.value) ? (next.value as T[]) : [next.value as T];
          const batch = items.map((e) => frameOf(e, eventId(e), eventName));
          out.enqueue(batch.length === 1 ? batch[0] : Buffer.concat(batch));
        } catch (error) {
          if (done) return;
          if (!controller.signal.aborted) out.enqueue(encoder.encode(`event: error\ndata: ${JSON.stringify(toHttpError(error))}\n\n`));
          finish();
          out.close();
        }
      },
      cancel() {
        finish();
      },
    },
    { highWaterMark: 1 },
  );
  return new Response(stream, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache, no-transform", connection: "keep-alive", "x-accel-buffering": "no" },
  });
}

/** The largest event id of a stream numbered by an Int column (a job's seq, an organisation's orgSeq). */
export const EVENT_SEQ_MAX = INT_COLUMN_MAX;

/** Last-Event-ID as a stream takes it: the id of an event it sent, a whole number up to `max`. */
export function lastEventIdSchema(max: number) {
  return z
    .string()
    .regex(/^\d{1,16}$/, "must be the id of an event this stream sent, a whole number")
    .refine((id) => Number(id) <= max, `must be at most ${max}, the largest id this stream sends`);
}

/**
 * Last-Event-ID from the header (browsers' EventSource) or the query (`?lastEventId=`); null
 * without one, 400 with one no event of the stream has.
 */
export function lastEventId(request: Request, max = Number.MAX_SAFE_INTEGER): number | null {
  const raw = request.headers.get("last-event-id") ?? new URL(request.url).searchParams.get("lastEventId");
  if (!raw) return null;
  const parsed = lastEventIdSchema(max).safeParse(raw);
  if (!parsed.success) throw new AppError("BAD_REQUEST", `Last-Event-ID ${parsed.error.issues[0].message}, not ${JSON.stringify(raw.slice(0, 40))}; reconnect without it to start afresh`);
  return Number(raw);
}

/**
 * Counts an event stream made elsewhere (tRPC's subscriptions) among the open streams until
 * its body ends or the client goes; any other response passes through untouched.
 */
export function countEventStream(response: Response, stream: string): Response {
  if (!response.body || !response.headers.get("content-type")?.startsWith("text/event-stream")) return response;
  const closeSubscriber = openSseSubscriber(stream);
  const reader = response.body.getReader();
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(out) {
        try {
          const { done, value } = await reader.read();
          if (!done) return out.enqueue(value);
          closeSubscriber();
          out.close();
        } catch (error) {
          closeSubscriber();
          out.error(error);
        }
      },
      cancel(reason) {
        closeSubscriber();
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}
