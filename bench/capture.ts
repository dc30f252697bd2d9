import zlib from "node:zlib";
import { compare, printResults } from "./lib/stats";
import { parsePly, writePly } from "../server/captures/ply";
import { encodeSpz } from "../server/captures/spz";
import { randomCloud } from "../server/captures/test-clouds";

// `npx tsx bench/capture.ts` — snapshot conversion on a seeded BENCH_SPLATS-splat SH-3 cloud
// (default 1M) shaped like a trained scene (room-sized positions, SH rest mostly near zero):
//   speed: PLY → parse and validate → SPZ v3 (gzip, Z_RLE), splats/s, best of BENCH_RUNS; beside it,
//          for context, gzip -6 of the same PLY (what a server would do without SPZ);
//   size:  SPZ bytes against the PLY, and gzip of the PLY against the PLY for context.
// No SPZ reference tool runs on this machine, so the reference columns are plain gzip.
//   ingest: 640×480 JPEGs posted to a capture session at 30/s for INGEST_SECONDS through the
//          portal's real route handlers and Postgres, p95 per request, against the same posts to
//          a bare Node HTTP server that only reads the body (this machine's floor for an upload);
//          and how long after its post a trainer long-polling the session sees each frame.

const SPLATS = Number(process.env.BENCH_SPLATS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const INGEST_SECONDS = Number(process.env.BENCH_INGEST_SECONDS ?? 6);
const INGEST_FPS = 30;

const ply = writePly(randomCloud(SPLATS, 3, 42));
let ours = Infinity;
let spzBytes = 0;
for (let r = 0; r < RUNS; r++) {
  const t = performance.now();
  spzBytes = encodeSpz(parsePly(ply)).length;
  ours = Math.min(ours, (performance.now() - t) / 1000);
}
const t = performance.now();
const gzBytes = zlib.gzipSync(ply, { level: 6 }).length;
const gzip = (performance.now() - t) / 1000;

const ingest = await frameIngest();

printResults("capture", [
  ...ingest,
  compare(`PLY → SPZ, ${SPLATS} splats SH 3 (reference: gzip -6 of the PLY)`, SPLATS / ours, SPLATS / gzip, "splats/s", "≥ 1000000 splats/s"),
  compare("SPZ bytes / PLY bytes (reference: gzip -6 of the PLY / PLY)", spzBytes / ply.length, gzBytes / ply.length, "fraction", "≤ 0.125"),
  compare("PLY bytes (context)", ply.length, ply.length, "bytes", "context: input size"),
]);


/** Frames posted at 30/s to a session, and a trainer waiting for them, against a bare upload server. */
async function frameIngest() {
  const { execFileSync } = await import("node:child_process");
  const fs = await import("node:fs");
  const http = await import("node:http");
  const path = await import("node:path");
  const { createTestDatabase } = await import("../tests/setup/test-database");
  const database = await createTestDatabase("bench_capture");
  process.env.DATABASE_URL = database.url;
  const { createDb } = await import("../server/db");
  const { createOrgWithMember } = await import("../tests/helpers/factories");
  const { createApiToken } = await import("../server/auth/tokens.service");
  const { createCaptureSession } = await import("../server/captures/sessions.service");
  const { startTestPortal, tempDir } = await import("../agent/test-helpers");
  const { percentile } = await import("./lib/stats");
  const dir = tempDir("bench-capture");
  const jpeg = path.join(dir, "frame.jpg");
  execFileSync("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x480", "-frames:v", "1", "-q:v", "3", jpeg]);
  const frame = fs.readFileSync(jpeg);
  const db = createDb(database.url, 4);
  // The per-session frame limit is policy, not speed: lifted so a stall of this shared machine does not end the run.
  const portal = await startTestPortal({ DATABASE_URL: database.url, GANTRY_HOME: tempDir("bench-capture-portal"), CAPTURE_FRAMES_PER_SECOND: "10000" });
  // The floor: an HTTP server that reads the body and answers, nothing else.
  const bare = http.createServer((req, res) => {
    req.on("data", () => {});
    req.on("end", () => res.writeHead(201, { "content-type": "application/json" }).end("{}"));
  });
  await new Promise<void>((resolve) => bare.listen(0, "127.0.0.1", resolve));
  const bareUrl = `http://127.0.0.1:${(bare.address() as { port: number }).port}/`;
  try {
    const { actor } = await createOrgWithMember(db, "operator");
    const { token } = await createApiToken(db, { actor, input: { name: "bench", scopes: ["write"] } });
    const session = await createCaptureSession(db, { actor, input: { name: "bench", chunkSize: 50, robotId: null } });
    const headers = { authorization: `Bearer ${token}`, "content-type": "image/jpeg" };
    const postAt30 = async (url: string, onPosted?: (seq: number, startedAt: number) => void) => {
      const latencies: number[] = [];
      const count = INGEST_SECONDS * INGEST_FPS;
      const start = performance.now();
      const inFlight: Promise<void>[] = [];
      for (let i = 0; i < count; i++) {
        const due = start + (i * 1000) / INGEST_FPS;
        if (due > performance.now()) await new Promise((r) => setTimeout(r, due - performance.now()));
        const startedAt = Date.now();
        const t = performance.now();
        inFlight.push(
          fetch(url, { method: "POST", headers, body: frame }).then(async (response) => {
            const body = (await response.json()) as { seq?: number };
            if (response.status !== 201) throw new Error(`frame ${i}: HTTP ${response.status} ${JSON.stringify(body)}`);
            latencies.push(performance.now() - t);
            if (body.seq !== undefined) onPosted?.(body.seq, startedAt);
          }),
        );
      }
      await Promise.all(inFlight);
      return latencies;
    };
    // The trainer: long-polls frames after its cursor and notes when each arrives.
    const seen = new Map<number, number>();
    const posted = new Map<number, number>();
    const trainer = new AbortController();
    const polling = (async () => {
      let after = 0;
      while (!trainer.signal.aborted) {
        const response = await fetch(`${portal.url}/api/captures/${session.id}/frames?after=${after}&wait=5`, { headers: { authorization: `Bearer ${token}` }, signal: trainer.signal }).catch(() => null);
        if (!response) return;
        const page = (await response.json()) as { cursor: number; frames: { seq: number }[] };
        for (const f of page.frames) seen.set(f.seq, Date.now());
        after = page.cursor;
      }
    })();
    await postAt30(`${portal.url}/api/captures/${session.id}/frames`); // warm-up
    seen.clear();
    const ours = await postAt30(`${portal.url}/api/captures/${session.id}/frames`, (seq, startedAt) => posted.set(seq, startedAt));
    await new Promise((r) => setTimeout(r, 1000));
    trainer.abort();
    await polling;
    const reference = await postAt30(bareUrl);
    const delays = [...posted].flatMap(([seq, at]) => (seen.has(seq) ? [seen.get(seq)! - at] : []));
    if (delays.length < posted.size * 0.95) throw new Error(`the trainer saw ${delays.length} of ${posted.size} frames`);
    return [
      compare(`frame ingest, ${INGEST_FPS} × 640×480 JPEG (${(frame.length / 1024).toFixed(0)} KiB)/s, p95 per request (reference: a bare Node upload server)`, percentile(ours, 95), percentile(reference, 95), "ms", "≤ 50 ms"),
      compare("frame posted → seen by a long-polling trainer, p95 (reference: the 50 ms ingest budget)", percentile(delays, 95), 50, "ms", "≤ 200 ms"),
    ];
  } finally {
    bare.close();
    await portal.stop();
    await db.$disconnect();
    await database.drop();
  }
}
