import http from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { AgentError } from "./config";
import { portalMessage } from "./portal";
import { isTransient, noAnswer, PortalError, retryDelayMs } from "./retry";

// A tus 1.0 client for one upload, sent in requests of at most `chunkBytes`. The portal saves
// how far an upload got as its bytes reach the disk, and at the latest when a request ends, so a
// cut connection or a portal process killed mid-request costs at most the request in flight.
// After any failure the client asks the portal where the upload stands (HEAD) and goes on from
// that byte, a bounded number of tries in a row that get nowhere, waiting longer each time.

const TUS_VERSION = "1.0.0";
// Long enough for the portal to check a whole episode's sums at the end (after a restart it hashes
// from disk the files the earlier process received); a connection silent longer is dead.
const TIMEOUT_MS = 5 * 60_000;

export interface TusUploadOptions {
  /** What is uploaded, for messages: "lab/pick episode 3". */
  label: string;
  /** Where uploads are created. */
  endpoint: string;
  headers: Record<string, string>;
  metadata: Record<string, string>;
  size: number;
  chunkBytes: number;
  retries: number;
  /** An upload begun by an earlier run, to resume. */
  resumeUrl: string | null;
  /** The bytes [start, end) of what is uploaded. */
  body(start: number, end: number): Readable;
  /** The upload's address once the portal made it, or null when it is no longer worth keeping. */
  onUrl(url: string | null): void;
  /** How far the portal has the upload, when first known and after each failure. */
  onOffset(offset: number): void;
  /** Bytes handed to the network so far, counted from the upload's start. */
  onSent(position: number): void;
  log(line: string): void;
}

export interface TusUploadResult {
  url: string;
  /** Where the portal stood when this run last resumed (0 when it never had to). */
  resumedAt: number;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** One request; a failure to get an answer is a PortalError with status 0, a body that fails is its own error. */
function send(agent: http.Agent, method: string, url: string, headers: Record<string, string>, body?: { stream: Readable; length: number; onSent: (bytes: number) => void }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const request = (target.protocol === "https:" ? https : http).request(target, { method, agent, headers: { ...headers, "tus-resumable": TUS_VERSION, "content-length": String(body?.length ?? 0) } });
    let bodyError: unknown = null;
    let sent = 0;
    request.setTimeout(TIMEOUT_MS, () => request.destroy(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" })));
    // `on`, not `once`: a request dropped after its answer may still report an error, unheard.
    request.on("error", (error) => {
      body?.stream.destroy();
      if (bodyError) reject(bodyError);
      else {
        const { code, reason } = noAnswer(error, TIMEOUT_MS);
        reject(new PortalError(`Cannot reach the portal at ${target.origin}: ${code}`, 0, reason));
      }
    });
    request.once("response", (response) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      response.on("data", (chunk: Buffer) => {
        if (kept < 64 * 1024) chunks.push(chunk);
        kept += chunk.length;
      });
      response.once("end", () => {
        if (body && !request.writableEnded) {
          // The answer came before the body was done with (a refusal, or the portal quicker than
          // the body's last tick): nothing more of it is read. Node no longer wakes a request
          // whose answer is complete, so it is ended here when every byte went, else dropped.
          body.stream.unpipe(request);
          body.stream.destroy();
          if (sent === body.length) request.end();
          else request.destroy();
        }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, text: Buffer.concat(chunks).toString("utf8") });
      });
      response.once("error", (error) => request.destroy(error));
    });
    if (!body) {
      request.end();
      return;
    }
    body.stream.on("data", (chunk: Buffer) => body.onSent((sent += chunk.length)));
    // A file that changed or vanished while it was read: the upload stops with its message.
    body.stream.once("error", (error) => {
      bodyError = error;
      request.destroy(error);
    });
    body.stream.pipe(request);
  });
}

const refusal = (what: string, answer: Answer) => {
  const message = portalMessage(answer.text, `HTTP ${answer.status}`);
  return new PortalError(`The portal refused ${what} (HTTP ${answer.status}): ${message}`, answer.status, `the portal answered HTTP ${answer.status} (${message})`);
};

/** 409: the portal holds another offset than ours; 423: another request still holds the upload. Both pass on asking again. */
const isWorthAnotherTry = (error: unknown): error is PortalError => isTransient(error) || (error instanceof PortalError && (error.status === 409 || error.status === 423));

function offsetOf(answer: Answer, size: number): number {
  const offset = Number(answer.headers["upload-offset"]);
  if (!Number.isInteger(offset) || offset < 0 || offset > size) throw new PortalError(`The portal answered an upload offset of "${answer.headers["upload-offset"]}" for an upload of ${size} bytes`, 0, "the portal's offset makes no sense");
  return offset;
}

export async function sendTusUpload(opts: TusUploadOptions): Promise<TusUploadResult> {
  const agent = new (new URL(opts.endpoint).protocol === "https:" ? https.Agent : http.Agent)({ keepAlive: true });
  let url = opts.resumeUrl;
  // null: not known, ask the portal (HEAD) before sending.
  let offset: number | null = null;
  let furthest = -1;
  let failures = 0;
  let restarts = 0;
  const startAgain = (line: string) => {
    if (++restarts > opts.retries) throw new AgentError(`The portal keeps losing the upload of ${opts.size} bytes; check its log and its GANTRY_HOME/uploads/edge folder`);
    opts.log(line);
    url = null;
    opts.onUrl(null);
  };
  let resumedAt = 0;
  try {
    for (;;) {
      try {
        if (url === null) {
          const metadata = Object.entries(opts.metadata)
            .map(([k, v]) => `${k} ${Buffer.from(v).toString("base64")}`)
            .join(",");
          const created = await send(agent, "POST", opts.endpoint, { ...opts.headers, "upload-length": String(opts.size), "upload-metadata": metadata });
          if (created.status !== 201 || !created.headers.location) throw refusal(opts.label, created);
          url = new URL(created.headers.location, opts.endpoint).toString();
          opts.onUrl(url);
          offset = 0;
          opts.onOffset(0);
        }
        if (offset === null) {
          const head = await send(agent, "HEAD", url, opts.headers);
          if (head.status === 404 || head.status === 410 || (head.status === 200 && Number(head.headers["upload-length"]) !== opts.size)) {
            startAgain("the portal no longer has the upload begun earlier; starting it again");
            continue;
          }
          if (head.status !== 200) throw refusal(opts.label, head);
          offset = offsetOf(head, opts.size);
          if (offset > 0) {
            resumedAt = offset;
            opts.log(`the portal has ${offset} of ${opts.size} bytes; going on from there`);
          }
          opts.onOffset(offset);
        }
        if (offset > furthest) {
          furthest = offset;
          failures = 0;
        }
        // The request that brings the last byte finishes the upload; one found complete already
        // (its answer was lost) is finished by an empty request at its end, which is harmless.
        const from = offset;
        const end = Math.min(opts.size, from + opts.chunkBytes);
        const body = end > from ? { stream: opts.body(from, end), length: end - from, onSent: (bytes: number) => opts.onSent(from + bytes) } : undefined;
        const answer = await send(agent, "PATCH", url, { ...opts.headers, "upload-offset": String(from), "content-type": "application/offset+octet-stream" }, body);
        if (answer.status === 404 || answer.status === 410) {
          startAgain("the portal no longer has the upload; starting it again");
          continue;
        }
        if (answer.status !== 204) throw refusal(opts.label, answer);
        offset = offsetOf(answer, opts.size);
        if (offset === opts.size) return { url, resumedAt };
        if (offset <= from) throw new PortalError(`The portal took none of the bytes sent at ${from}`, 0, `the portal took none of the bytes sent at ${from}`);
      } catch (error) {
        if (!isWorthAnotherTry(error)) throw error;
        offset = null;
        failures++;
        if (failures > opts.retries) throw new PortalError(`${error.message} (gave up after ${failures} tries)`, error.status, error.reason);
        const wait = retryDelayMs(failures);
        opts.log(`${error.reason}; trying again in ${(wait / 1000).toFixed(1)} s from where the portal got to (${failures} of ${opts.retries})`);
        await sleep(wait);
      }
    }
  } finally {
    agent.destroy();
  }
}
