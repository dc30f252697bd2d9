import { createHash } from "node:crypto";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { writePly } from "../../server/captures/ply";
import { encodeSpz } from "../../server/captures/spz";
import { randomCloud } from "../../server/captures/test-clouds";

// A stand-in for a Gaussian-splat trainer, speaking the trainer protocol (docs/capture.md) as
// a GPU trainer would: it claims a session, long-polls frames after its cursor, fetches each
// one and checks its sha256, and every `every` frames pushes a snapshot — a seeded random
// cloud that grows with the frames seen, so each is valid and different — with heartbeats in
// between. When the session stops it pushes a last snapshot for any frames since the previous
// one and releases its lease. A reset (the generation changes) starts it over.
//
//   GANTRY_TOKEN=gty_... npx tsx tests/helpers/capture-trainer.ts --portal http://localhost:3000 --session <id> [--every 10] [--name stand-in] [--format ply|spz]

export interface StandInOptions {
  portal: string;
  token: string;
  sessionId: string;
  name?: string;
  /** Frames between snapshots. */
  every?: number;
  format?: "ply" | "spz";
  shDegree?: number;
  /** The capture camera as the trainer solved it, sent with each snapshot (docs/capture.md). */
  camera?: Record<string, unknown>;
  signal?: AbortSignal;
  log?: (message: string) => void;
}

export interface StandInResult {
  frames: number;
  snapshots: { id: string; iteration: number; splats: number }[];
  generations: number[];
}

interface Lease {
  claimId: string;
  generation: number;
  silentAfterMs: number;
}

interface FramesPage {
  status: "active" | "stopped";
  generation: number;
  cursor: number;
  frames: { seq: number; sha256: string; bytes: number; url: string }[];
}

export class TrainerProtocolError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The cloud pushed after `frames` frames: more splats the more frames it has seen. */
export function standInCloudSize(frames: number): number {
  return 200 + frames * 20;
}

export async function runStandInTrainer(opts: StandInOptions): Promise<StandInResult> {
  const { portal, token, sessionId, name = "stand-in", every = 10, format = "ply", shDegree = 1, camera, signal, log = () => {} } = opts;
  const base = portal.replace(/\/$/, "");
  const headers = { authorization: `Bearer ${token}` };

  async function call(method: string, path: string, body?: unknown, extra: RequestInit = {}): Promise<Response> {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { ...headers, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal,
      ...extra,
    });
    if (!response.ok) {
      const text = await response.text();
      let message = text;
      try {
        message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
      } catch {
        // not JSON: keep the text
      }
      throw new TrainerProtocolError(response.status, `${method} ${path}: ${response.status} ${message}`);
    }
    return response;
  }

  // Another trainer may hold the session: wait for its lease to lapse.
  let lease: Lease;
  for (;;) {
    try {
      lease = (await (await call("POST", `/api/captures/${sessionId}/claim`, { trainer: name })).json()) as Lease;
      break;
    } catch (error) {
      if (!(error instanceof TrainerProtocolError) || error.status !== 409) throw error;
      log(error.message);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  log(`claimed session ${sessionId} as ${name}`);
  const heartbeatEvery = lease.silentAfterMs / 3;
  const waitSeconds = Math.max(0.5, Math.min(10, heartbeatEvery / 1000));
  const result: StandInResult = { frames: 0, snapshots: [], generations: [lease.generation] };
  let generation = lease.generation;
  let cursor = 0;
  let frames = 0;
  let sincePush = 0;
  let iteration = 0;
  let gaussians = 0;
  let lastBeat = Date.now();

  const beat = async () => {
    const answer = (await (await call("POST", `/api/captures/${sessionId}/heartbeat`, { claimId: lease.claimId, iteration, gaussians, progress: Math.min(1, frames / 1000) })).json()) as Lease;
    lastBeat = Date.now();
    return answer;
  };

  const push = async () => {
    const cloud = randomCloud(standInCloudSize(frames), shDegree, frames);
    const file = format === "spz" ? encodeSpz(cloud) : writePly(cloud);
    iteration = frames * 100;
    const query = new URLSearchParams({ claimId: lease.claimId, iteration: String(iteration), generation: String(generation), ...(camera ? { camera: JSON.stringify(camera) } : {}) });
    const snapshot = (await (await call("POST", `/api/captures/${sessionId}/snapshots?${query}`, undefined, { body: file as Uint8Array<ArrayBuffer>, headers: { ...headers, "content-type": "application/octet-stream" } })).json()) as { id: string; splats: number };
    gaussians = snapshot.splats;
    result.snapshots.push({ id: snapshot.id, iteration, splats: snapshot.splats });
    sincePush = 0;
    log(`pushed snapshot ${snapshot.id}: ${snapshot.splats} splats after ${frames} frames`);
  };

  try {
    while (!signal?.aborted) {
      const page = (await (await call("GET", `/api/captures/${sessionId}/frames?after=${cursor}&wait=${waitSeconds}&limit=100`)).json()) as FramesPage;
      if (page.generation !== generation) {
        // The session was reset: its earlier frames are gone, and so is what was learnt from them.
        log(`session reset (generation ${page.generation}); starting over`);
        generation = page.generation;
        result.generations.push(generation);
        frames = sincePush = iteration = gaussians = 0;
      }
      for (const frame of page.frames) {
        const bytes = new Uint8Array(await (await call("GET", frame.url)).arrayBuffer());
        const digest = createHash("sha256").update(bytes).digest("hex");
        if (digest !== frame.sha256 || bytes.length !== frame.bytes) throw new Error(`Frame ${frame.seq} arrived damaged: sha256 ${digest}, expected ${frame.sha256}`);
        frames++;
        sincePush++;
        result.frames++;
        if (sincePush >= every) await push();
      }
      cursor = page.cursor;
      if (Date.now() - lastBeat >= heartbeatEvery || page.frames.length) await beat();
      if (page.status === "stopped" && page.frames.length === 0) {
        if (sincePush > 0) await push();
        await beat();
        break;
      }
    }
  } catch (error) {
    if (!signal?.aborted) throw error;
  }
  // Done, or told to stop: the next trainer need not wait for this one's lease to lapse.
  await fetch(`${base}/api/captures/${sessionId}/release`, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify({ claimId: lease.claimId }) }).catch(() => {});
  log(`released session ${sessionId} after ${frames} frames`);
  return result;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      portal: { type: "string", default: "http://localhost:3000" },
      session: { type: "string" },
      every: { type: "string", default: "10" },
      name: { type: "string", default: "stand-in" },
      format: { type: "string", default: "ply" },
    },
  });
  const token = process.env.GANTRY_TOKEN;
  if (!values.session || !token) {
    console.error("Usage: GANTRY_TOKEN=gty_... npx tsx tests/helpers/capture-trainer.ts --portal <url> --session <id> [--every 10] [--name stand-in] [--format ply|spz]");
    process.exit(2);
  }
  const controller = new AbortController();
  process.once("SIGINT", () => controller.abort());
  const result = await runStandInTrainer({
    portal: values.portal!,
    token,
    sessionId: values.session,
    name: values.name,
    every: Number(values.every),
    format: values.format === "spz" ? "spz" : "ply",
    signal: controller.signal,
    log: (m) => console.log(m),
  });
  console.log(`${result.frames} frames, ${result.snapshots.length} snapshots`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
