import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { sseResponse } from "./sse";

// The event-stream writer: a batch of events (those waiting together) leaves in one write, so a
// burst costs one write per subscriber, not one per event; an event that comes alone is not held
// back; the order, ids and the closing `end` or `error` are the same either way.

interface Ev {
  n: number;
}

/** Reads a response body chunk by chunk, as a client's socket would see its writes. */
async function chunksOf(response: Response): Promise<string[]> {
  const chunks: string[] = [];
  const decoder = new TextDecoder();
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) chunks.push(decoder.decode(chunk));
  return chunks;
}

const idsIn = (text: string) => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));

function open(events: AsyncGenerator<Ev | Ev[]>) {
  return sseResponse(new Request("http://localhost/api/events"), events, (e) => String(e.n), new AbortController());
}

describe("sseResponse", () => {
  it("sends each batch in one write, in order, skips empty ones, then the end", async () => {
    async function* batches() {
      for (let at = 1; at <= 150; at += 50) {
        yield [];
        yield Array.from({ length: 50 }, (_, i) => ({ n: at + i }));
      }
    }
    const chunks = await chunksOf(open(batches()));
    const text = chunks.join("");
    expect(idsIn(text)).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
    expect(text.endsWith("event: end\ndata: {}\n\n")).toBe(true);
    // The greeting, three writes of 50 events, and the end.
    expect(chunks.filter((c) => c.includes("id: ")).map((c) => idsIn(c).length)).toEqual([50, 50, 50]);
    for (const c of chunks) expect(c.endsWith("\n\n")).toBe(true);
  });

  it("does not hold an event back waiting for company", async () => {
    // Each event comes only once the one before it was read: a writer that held an event back
    // until another came would wait for ever.
    const markRead: Array<() => void> = [];
    const wasRead = Array.from({ length: 3 }, (_, i) => new Promise<void>((r) => (markRead[i] = r)));
    async function* lockstep() {
      for (let n = 1; n <= 3; n++) {
        yield { n };
        await wasRead[n - 1];
      }
    }
    const response = open(lockstep());
    const decoder = new TextDecoder();
    const seen: number[] = [];
    const reading = (async () => {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        for (const id of idsIn(decoder.decode(chunk))) {
          seen.push(id);
          markRead[id - 1]();
        }
      }
    })();
    const held = new AbortController();
    const timedOut = sleep(10_000, undefined, { signal: held.signal }).then(
      () => expect.fail(`An event was held back: ${seen.length} of 3 arrived`),
      () => {},
    );
    await Promise.race([reading, timedOut]);
    held.abort();
    expect(seen).toEqual([1, 2, 3]);
  });

  it("sends what came before a failure, then the failure as an error event", async () => {
    async function* failing() {
      yield [{ n: 1 }, { n: 2 }];
      throw new Error("the source broke");
    }
    const text = (await chunksOf(open(failing()))).join("");
    expect(idsIn(text)).toEqual([1, 2]);
    expect(text).toMatch(/event: error\ndata: \{.*\}\n\n$/);
  });

  it("a failure that comes while a write waits is sent, never left unhandled", async () => {
    let fail!: (error: Error) => void;
    async function* failsLater() {
      yield { n: 1 };
      await new Promise<void>((_, reject) => (fail = reject));
    }
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const reading = chunksOf(open(failsLater()));
      await sleep(100);
      fail(new Error("gone while nobody read"));
      const text = (await reading).join("");
      expect(idsIn(text)).toEqual([1]);
      expect(text).toMatch(/event: error/);
      await sleep(50);
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});
