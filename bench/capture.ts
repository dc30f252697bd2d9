import fs from "node:fs";
import zlib from "node:zlib";
import { compare, percentile, printResults } from "./lib/stats";
import { writePly } from "../server/captures/ply";
import { convertPlyToSpz } from "../server/captures/spz";
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
//          and how long after its post a trainer long-polling the session sees each frame;
//   pose:  joint angles posted over HTTP → the pose in Chromium, which holds the session's joint
//          subscription (the typed client's event stream, as the capture page) and notes each
//          pose at the next frame it draws, p95, against a bare NOTIFY → LISTEN round trip on the
//          same Postgres; the server side alone (to a subscription in another process) as context;
//   first frame: the 1M-splat scene's SPZ against its PLY, each loaded by Spark (the viewer's
//          renderer) in Chromium and drawn once, from the request to the pixels read back —
//          judged with the files served across a 100 Mbit/s link (BENCH_LINK_MBIT: a namespace
//          behind a tc token bucket; needs root), and over loopback for context, where
//          Chromium's software WebGL (SwiftShader) and decoding are most of the time.

const SPLATS = Number(process.env.BENCH_SPLATS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const INGEST_SECONDS = Number(process.env.BENCH_INGEST_SECONDS ?? 6);
const INGEST_FPS = 30;
const POSES = Number(process.env.BENCH_POSES ?? 100);
const LINK_MBIT = Number(process.env.BENCH_LINK_MBIT ?? 100);
const log = (message: string) => console.error(`[capture bench] ${message}`);

const ply = writePly(randomCloud(SPLATS, 3, 42));
let ours = Infinity;
let spz: Buffer = Buffer.alloc(0);
for (let r = 0; r < RUNS; r++) {
  const t = performance.now();
  spz = (await convertPlyToSpz(ply)).spz;
  ours = Math.min(ours, (performance.now() - t) / 1000);
}
const spzBytes = spz.length;
const t = performance.now();
const gzBytes = zlib.gzipSync(ply, { level: 6 }).length;
const gzip = (performance.now() - t) / 1000;

log("conversion done; frame ingest and pose latency");
const ingest = await frameIngest();
log("first frame in Chromium");
const firstFrame = await browserFirstFrame(ply, spz);

printResults("capture", [
  ...ingest,
  ...firstFrame,
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
    log("pose latency");
    const postAngles = (angles: number[]) => fetch(`${portal.url}/api/captures/${session.id}/joints`, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify({ joint_angles: angles }) });
    const pose = await poseLatency({ db, url: database.url, actor, sessionId: session.id, post: postAngles });
    log("pose latency in a browser");
    const browserPose = await browserPoseLatency({ portalUrl: portal.url, token, sessionId: session.id, post: postAngles, floorP95: pose.reference });
    return [
      browserPose,
      pose,
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

/** Joint angles posted to the portal process → the pose out of the session's subscription here (another process), against NOTIFY → LISTEN alone. */
async function poseLatency({ db, url, actor, sessionId, post }: { db: import("../server/db").Db; url: string; actor: import("../server/auth/roles").OrgActor; sessionId: string; post: (angles: number[]) => Promise<Response> }) {
  const { RealtimeHub } = await import("../server/jobs/realtime");
  const { jointStates } = await import("../server/captures/joints.service");
  const hub = new RealtimeHub({ url, db, jobEvents: false });
  await hub.ensureConnected();
  const controller = new AbortController();
  const states = jointStates(db, { actor, sessionId, hub, signal: controller.signal });
  await states.next();
  // The subscription's LISTEN is in place before the first post.
  await hub.ensureConnected();
  const ours: number[] = [];
  const floor: number[] = [];
  try {
    for (let i = 0; i < POSES; i++) {
      const t = performance.now();
      const seen = states.next();
      const response = await post([i / 1000, 0.1, 0.2, 0.3, 0.4, 0.5]);
      if (response.status !== 201) throw new Error(`pose ${i}: HTTP ${response.status} ${await response.text()}`);
      const state = (await seen).value as { angles: number[] } | null;
      if (state?.angles[0] !== i / 1000) throw new Error(`pose ${i}: the subscription gave ${JSON.stringify(state)}`);
      ours.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 1000 / 60));
    }
    // The floor: a NOTIFY from one connection heard on the LISTEN connection.
    let heard: ((payload: string | null) => void) | null = null;
    const off = hub.listen("gantry_bench_ping", (payload) => heard?.(payload));
    await hub.ensureConnected();
    for (let i = 0; i < POSES; i++) {
      const t = performance.now();
      await new Promise<void>((resolve) => {
        heard = (payload) => payload === String(i) && resolve();
        // A Prisma query runs only once it is awaited or then-ed.
        db.$executeRaw`SELECT pg_notify('gantry_bench_ping', ${String(i)})`.then(() => {}, () => {});
      });
      floor.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 1000 / 60));
    }
    off();
  } finally {
    controller.abort();
    await states.return(undefined);
    await hub.stop();
  }
  return compare(`joint angles posted → pose from the session's subscription in another process, p95 (reference: NOTIFY → LISTEN alone)`, percentile(ours, 95), percentile(floor, 95), "ms", "context: the server side of the same path, to a subscription in another process");
}

/**
 * Joint angles posted → the pose in a browser: Chromium holds the session's joint subscription
 * (the typed client's event stream, as the capture page does) and notes, at the next frame it
 * draws after each message, when that pose arrived. Both clocks are this machine's.
 */
async function browserPoseLatency({ portalUrl, token, sessionId, post, floorP95 }: { portalUrl: string; token: string; sessionId: string; post: (angles: number[]) => Promise<Response>; floorP95: number }) {
  const { chromium } = await import("playwright");
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-first-run", "--disable-background-networking"] });
  try {
    const context = await browser.newContext({ extraHTTPHeaders: { authorization: `Bearer ${token}` } });
    const tab = await context.newPage();
    await tab.goto(`${portalUrl}/status`); // any page of the portal's origin
    await tab.evaluate(async (id) => {
      const w = window as unknown as { poses: Record<string, number>; poseError?: string };
      w.poses = {};
      const input = encodeURIComponent(JSON.stringify({ json: { sessionId: id } }));
      const source = new EventSource(`/api/trpc/captures.onJoints?input=${input}`);
      source.onmessage = (e) => {
        const data = JSON.parse(e.data) as { json?: { angles?: number[] } | null };
        const first = data?.json?.angles?.[0];
        if (first !== undefined) requestAnimationFrame(() => (w.poses[String(first)] = Date.now()));
      };
      source.addEventListener("serialized-error", (e) => (w.poseError = (e as MessageEvent).data));
      await new Promise<void>((resolve, reject) => {
        source.addEventListener("connected", () => resolve());
        source.onerror = () => reject(new Error(w.poseError ?? "the joint subscription did not open"));
      });
    }, sessionId);
    await new Promise((r) => setTimeout(r, 500)); // the subscription's LISTEN in place
    const latencies: number[] = [];
    for (let i = 0; i < POSES; i++) {
      const angle = 1 + i / 1000;
      const t = Date.now();
      const response = await post([angle, 0.1, 0.2, 0.3, 0.4, 0.5]);
      if (response.status !== 201) throw new Error(`pose ${i}: HTTP ${response.status} ${await response.text()}`);
      const handle = await tab.waitForFunction((a) => (window as unknown as { poses: Record<string, number> }).poses[String(a)], angle, { timeout: 10_000 });
      latencies.push(((await handle.jsonValue()) as number) - t);
      await new Promise((r) => setTimeout(r, 1000 / 30));
    }
    return compare("joint angles posted → pose drawn in a subscribed browser (Chromium, the next frame after the message), p95 (reference: NOTIFY → LISTEN alone)", percentile(latencies, 95), floorP95, "ms", "≤ 100 ms");
  } finally {
    await browser.close();
  }
}

/**
 * Spark in Chromium loads the scene and draws it once: its SPZ against its PLY. Judged with the
 * files coming over a 100 Mbit/s link (a server in a network namespace behind a tc token
 * bucket, as a portal across a LAN or good Wi-Fi), where their sizes count as they do for a
 * person; over loopback, printed as context, Chromium's software WebGL and Spark's decoding are
 * most of the time. Without root or iproute2 only the loopback row is printed.
 */
async function browserFirstFrame(plyFile: Buffer, spzFile: Buffer) {
  const { startSparkPage, firstFrame } = await import("../tests/helpers/spark-page");
  const spark = await startSparkPage({ "scene.ply": plyFile, "scene.spz": spzFile });
  const rows = [];
  try {
    const load = async (url: string) => {
      const tab = await spark.open();
      const result = await firstFrame(tab, url);
      await tab.close();
      if (result.splats !== SPLATS) throw new Error(`Spark loaded ${result.splats} splats from ${url}, not ${SPLATS}`);
      return result.ms;
    };
    const linked = await overShapedLink({ "scene.ply": plyFile, "scene.spz": spzFile }, LINK_MBIT);
    if (linked) {
      try {
        const spzMs = await load(`${linked.base}/scene.spz`);
        const plyMs = await load(`${linked.base}/scene.ply`);
        rows.push(compare(`${SPLATS}-splat snapshot → first frame in Chromium over a ${LINK_MBIT} Mbit/s link: SPZ (reference: the PLY)`, spzMs, plyMs, "ms", "≤ 0.5×"));
      } finally {
        linked.stop();
      }
    }
    const spzMs = await load(`${spark.base}/scene.spz`);
    const plyMs = await load(`${spark.base}/scene.ply`);
    rows.push(compare(`${SPLATS}-splat snapshot → first frame in Chromium over loopback: SPZ (reference: the PLY)`, spzMs, plyMs, "ms", linked ? "context: no network, so mostly software WebGL and decoding" : "≤ 0.5× (no shaped link here: needs root and iproute2)"));
    return rows;
  } finally {
    await spark.close();
  }
}

/** The files served from a network namespace behind a shaped link (CORS open, for the page's origin); null when links cannot be made here. */
async function overShapedLink(files: Record<string, Buffer>, rateMbit: number): Promise<{ base: string; stop(): void } | null> {
  const { spawn } = await import("node:child_process");
  const os = await import("node:os");
  const path = await import("node:path");
  if (process.getuid?.() !== 0) return null;
  const { createShapedLinks, removeNamespace } = await import("../tests/helpers/netns-link");
  let link;
  try {
    [link] = createShapedLinks(1, { rateMbit });
  } catch (error) {
    log(`no shaped link (${(error as Error).message.split("\n")[0]}); first frame over loopback only`);
    return null;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-bench-link-"));
  for (const [name, bytes] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), bytes);
  const server = `
    const http = require("node:http"), fs = require("node:fs"), path = require("node:path");
    const [dir, host] = process.argv.slice(1);
    const s = http.createServer((req, res) => {
      const file = path.join(dir, path.basename(req.url.split("?")[0]));
      if (!fs.existsSync(file)) return res.writeHead(404, { "access-control-allow-origin": "*" }).end();
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": fs.statSync(file).size, "access-control-allow-origin": "*" });
      fs.createReadStream(file).pipe(res);
    });
    s.listen(0, host, () => console.log("port " + s.address().port));`;
  const child = spawn(link.inNamespace[0], [...link.inNamespace.slice(1), process.execPath, "-e", server, dir, link.deviceAddress], { stdio: ["ignore", "pipe", "inherit"] });
  const stop = () => {
    child.kill("SIGKILL");
    removeNamespace(link.namespace);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.on("data", (d: Buffer) => {
        const m = /port (\d+)/.exec(d.toString());
        if (m) resolve(Number(m[1]));
      });
      child.once("exit", (code) => reject(new Error(`the link's file server exited (${code})`)));
    });
    return { base: `http://${link.deviceAddress}:${port}`, stop };
  } catch (error) {
    stop();
    throw error;
  }
}
