import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../tests/helpers/db";
import { createOrgWithMember, waitFor } from "../tests/helpers/factories";
import { createApiToken, revokeApiToken } from "../server/auth/tokens.service";
import type { OrgActor } from "../server/auth/roles";
import { ARCHIVE_FORMAT } from "../server/edge/edge.schemas";
import { buildEpisodeArchive } from "./archive";
import type { EpisodeFile } from "./layout";
import { buildAgent, freePort, recordEpisode, runAgent, startPortalFront, startRelay, startTestPortal, tempDir, type FrontAction, type TestPortal } from "./test-helpers";

// The bundled agent, run as a user would, against the real edge route handlers and Postgres.

const db = testDb();
let portal: TestPortal;
let uploadDir: string;
let token: string;
let viewerToken: string;
let orgId: string;
let member: OrgActor;

const sha = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
const unique = () => crypto.randomBytes(4).toString("hex");

async function loggedInHome(url = portal.url, withToken = token): Promise<string> {
  const home = tempDir("agent-home");
  const login = await runAgent(["login", "--portal", url, "--token", withToken], { home });
  expect(login.code, login.stderr).toBe(0);
  return home;
}

beforeAll(async () => {
  buildAgent();
  const { actor, orgId: org } = await createOrgWithMember(db, "operator");
  orgId = org;
  member = actor;
  token = (await createApiToken(db, { actor, input: { name: "agent", scopes: ["write"] } })).token;
  viewerToken = (await createApiToken(db, { actor, input: { name: "reader", scopes: ["read"] } })).token;
  uploadDir = tempDir("edge-uploads");
  portal = await startTestPortal({ GANTRY_HOME: tempDir("portal-home"), EDGE_UPLOAD_DIR: uploadDir, EDGE_MIN_FREE_DISK_BYTES: "0" });
}, 120_000);

afterAll(async () => {
  await portal?.stop();
});

describe("gantry-agent login", () => {
  it("checks the token with the portal and keeps it in a file only its owner can read", async () => {
    const home = await loggedInHome();
    const file = path.join(home, "agent.json");
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(fs.readFileSync(file, "utf8"))).toMatchObject({ portal: portal.url, token });
  });

  it("refuses a bad token and saves nothing", async () => {
    const home = tempDir("agent-home");
    const run = await runAgent(["login", "--portal", portal.url, "--token", "gty_00000000_" + "a".repeat(43)], { home });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/HTTP 401.*not valid or has been revoked/);
    expect(fs.existsSync(path.join(home, "agent.json"))).toBe(false);
  });

  it("says so when the portal cannot be reached, and when a command needs a login first", async () => {
    const home = tempDir("agent-home");
    const run = await runAgent(["login", "--portal", "http://127.0.0.1:9", "--token", token], { home });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/Cannot reach the portal at http:\/\/127\.0\.0\.1:9/);
    const upload = await runAgent(["upload", home, "--dataset", "lab/x"], { home });
    expect(upload.code).toBe(2);
    expect(upload.stderr).toMatch(/Not logged in/);
  });
});

describe("gantry-agent upload", () => {
  it("uploads an episode's frames and data, checked by sha256, and queues its encoding; again is harmless", async () => {
    const home = await loggedInHome();
    const recording = tempDir("recording");
    // LeRobot names camera folders by feature key; the portal calls the camera by its last part.
    recordEpisode(recording, { episode: 3, frames: 12, cameraFolder: (c) => `observation.images.${c}` });
    const repoId = `lab/pick-${unique()}`;
    const first = await runAgent(["upload", recording, "--dataset", repoId, "--task", "pick the cube"], { home });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/episode 3: uploading: 25 files/);
    expect(first.stderr).toMatch(/queued for encoding/);

    const raw = path.join(uploadDir, orgId, "lab", repoId.split("/")[1]);
    for (const camera of ["front", "wrist"]) {
      for (let i = 0; i < 12; i++) {
        const name = `frame-${String(i).padStart(6, "0")}.png`;
        expect(sha(path.join(raw, "images", camera, "episode-000003", name))).toBe(sha(path.join(recording, "images", `observation.images.${camera}`, "episode-000003", name)));
      }
    }
    expect(sha(path.join(raw, "data", "episode-000003.jsonl"))).toBe(sha(path.join(recording, "data", "episode-000003.jsonl")));
    const leftovers = fs.readdirSync(path.join(raw, "images", "front", "episode-000003")).filter((n) => n.includes(".part-"));
    expect(leftovers).toEqual([]);

    const episode = await db.episode.findFirstOrThrow({ where: { orgId, number: 3, dataset: { repoId } } });
    expect(episode).toMatchObject({ mode: "edge", task: "pick the cube", fps: 30, cameras: ["front", "wrist"] });
    expect(episode.jobId).not.toBeNull();

    // Again: the portal has it, so nothing is sent; forced, it is sent but not queued twice.
    const again = await runAgent(["upload", recording, "--dataset", repoId], { home });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/already has it \(encoding\); skipped/);
    expect(again.stderr).not.toMatch(/uploading/);
    const forced = await runAgent(["upload", recording, "--dataset", repoId, "--force"], { home });
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).toMatch(/uploading: 25 files/);
    expect(forced.stderr).toMatch(/already registered/);
    expect(await db.episode.count({ where: { dataset: { repoId } } })).toBe(1);
    expect(await db.job.count({ where: { id: episode.jobId! } })).toBe(1);

    const status = await runAgent(["status", repoId, "--json"], { home });
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ repo_id: repoId, status: "ENCODING", episodes: { total: 1, encoded: 0, failed: 0 } });
  });

  it("resumes after the connection is cut mid-upload, from the last byte the portal stored", async () => {
    const home = tempDir("agent-home");
    let hasCut = false;
    const relay = await startRelay(portal.port, (total, cut) => {
      if (!hasCut && total > 4_000_000) {
        hasCut = true;
        cut();
      }
    });
    try {
      const login = await runAgent(["login", "--portal", `http://127.0.0.1:${relay.port}`, "--token", token], { home });
      expect(login.code, login.stderr).toBe(0);
      const recording = tempDir("recording");
      recordEpisode(recording, { episode: 0, frames: 60, size: "320x240", noise: true });
      const archiveBytes = fs.readdirSync(path.join(recording, "images", "front", "episode-000000")).length * 2 * 230_400;
      const repoId = `lab/cut-${unique()}`;
      const run = await runAgent(["upload", recording, "--dataset", repoId], { home });
      expect(run.code, run.stderr).toBe(0);
      expect(hasCut).toBe(true);
      const resumedAt = Number(/resumed at ([\d.]+) MB/.exec(run.stderr)?.[1] ?? 0) * 1e6;
      expect(resumedAt, run.stderr).toBeGreaterThan(0);
      // Resuming sent the rest, not the whole archive again.
      expect(relay.total()).toBeLessThan(archiveBytes * 1.3);
      expect(sha(path.join(uploadDir, orgId, "lab", repoId.split("/")[1], "images", "wrist", "episode-000000", "frame-000059.png"))).toBe(sha(path.join(recording, "images", "wrist", "episode-000000", "frame-000059.png")));
    } finally {
      relay.close();
    }
  });

  it("stops with a clear message, not a crash, when a frame changes while it is being sent", async () => {
    const recording = tempDir("recording");
    recordEpisode(recording, { episode: 0, frames: 60, size: "320x240", noise: true });
    const last = path.join(recording, "images", "wrist", "episode-000000", "frame-000059.png");
    const home = tempDir("agent-home");
    let changed = false;
    const relay = await startRelay(portal.port, (total) => {
      if (!changed && total > 2_000_000) {
        changed = true;
        fs.truncateSync(last, 100);
      }
    });
    try {
      expect((await runAgent(["login", "--portal", `http://127.0.0.1:${relay.port}`, "--token", token], { home })).code).toBe(0);
      const run = await runAgent(["upload", recording, "--dataset", `lab/changed-${unique()}`], { home });
      expect(changed).toBe(true);
      expect(run.code, run.stderr).toBe(1);
      expect(run.stderr).toMatch(/frame-000059\.png changed while it was being uploaded/);
      expect(run.stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
    } finally {
      relay.close();
    }
  });

  it("resumes after the agent itself is killed mid-upload, from where the portal got to", async () => {
    const recording = tempDir("recording");
    recordEpisode(recording, { episode: 1, frames: 60, size: "320x240", noise: true });
    const repoId = `lab/kill-${unique()}`;
    const home = tempDir("agent-home");
    let killed = false;
    let agent: import("node:child_process").ChildProcess | null = null;
    const relay = await startRelay(portal.port, (total) => {
      if (!killed && total > 6_000_000 && agent) {
        killed = true;
        agent.kill("SIGKILL");
      }
    });
    try {
      const relayed = `http://127.0.0.1:${relay.port}`;
      expect((await runAgent(["login", "--portal", relayed, "--token", token], { home })).code).toBe(0);
      const first = await runAgent(["upload", recording, "--dataset", repoId], { home, onSpawn: (c) => (agent = c) });
      expect(first.code).toBeNull(); // killed
      expect(killed).toBe(true);
      const second = await runAgent(["upload", recording, "--dataset", repoId], { home });
      expect(second.code, second.stderr).toBe(0);
      const resumedAt = Number(/resumed at ([\d.]+) MB/.exec(second.stderr)?.[1] ?? 0) * 1e6;
      expect(resumedAt, second.stderr).toBeGreaterThan(1_000_000);
      expect(await db.episode.count({ where: { dataset: { repoId }, number: 1 } })).toBe(1);
      // The finished upload is forgotten: nothing left to resume.
      expect(JSON.parse(fs.readFileSync(path.join(home, "uploads.json"), "utf8"))).toEqual({});
    } finally {
      relay.close();
    }
  });

  it("encodes locally with ffmpeg and uploads MP4s in mode 0 (CLOUD_OFFLOAD=0)", async () => {
    const home = await loggedInHome();
    const recording = tempDir("recording");
    recordEpisode(recording, { episode: 2, frames: 15 });
    const repoId = `lab/local-${unique()}`;
    const run = await runAgent(["upload", recording, "--dataset", repoId], { home, env: { CLOUD_OFFLOAD: "0" } });
    expect(run.code, run.stderr).toBe(0);
    const raw = path.join(uploadDir, orgId, "lab", repoId.split("/")[1]);
    expect(fs.statSync(path.join(raw, "videos", "front", "episode-000002.mp4")).size).toBeGreaterThan(1000);
    expect(fs.existsSync(path.join(raw, "images"))).toBe(false);
    expect(await db.episode.findFirstOrThrow({ where: { dataset: { repoId } } })).toMatchObject({ mode: "local", cameras: ["front", "wrist"] });
  });

  it("refuses what it cannot do with a clear message and a non-zero exit", async () => {
    const home = await loggedInHome();
    const empty = tempDir("recording");
    const none = await runAgent(["upload", empty, "--dataset", "lab/empty"], { home });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/No episodes in/);
    const badMode = await runAgent(["upload", empty, "--dataset", "lab/empty", "--mode", "1"], { home });
    expect(badMode.code).toBe(2);
    expect(badMode.stderr).toMatch(/--mode must be 2 .* or 0/);
    const badRepo = await runAgent(["upload", empty, "--dataset", "../etc"], { home });
    expect(badRepo.code).toBe(2);

    const viewerHome = await loggedInHome(portal.url, viewerToken);
    const recording = tempDir("recording");
    recordEpisode(recording, { episode: 0, frames: 3 });
    const viewer = await runAgent(["upload", recording, "--dataset", `lab/viewer-${unique()}`], { home: viewerHome });
    expect(viewer.code).toBe(1);
    expect(viewer.stderr).toMatch(/HTTP 403.*operator role/);
  });
});

describe("when the portal fails", () => {
  /**
   * Uploads an episode through a relay that counts every byte on its way to the portal, and kills
   * the portal process (SIGKILL) once `killWhen` says so, starting it again on its port.
   */
  async function uploadThroughCrash({ chunk, killWhen, holdAfter }: { chunk: number; killWhen: (relayed: number, portalHome: string) => boolean; holdAfter?: number }) {
    const port = await freePort();
    const settings = { GANTRY_HOME: tempDir("portal-home"), EDGE_UPLOAD_DIR: tempDir("edge-uploads"), EDGE_MIN_FREE_DISK_BYTES: "0", TEST_PORTAL_PORT: String(port) };
    const first = await startTestPortal(settings);
    let second = null as Promise<TestPortal> | null;
    let killedAt = 0;
    const tryKill = (total: number) => {
      if (second || !killWhen(total, settings.GANTRY_HOME)) return false;
      killedAt = total;
      first.child.kill("SIGKILL");
      second = new Promise((resolve) => first.child.once("exit", resolve)).then(() => startTestPortal(settings));
      return true;
    };
    const relay = await startRelay(port, (total, _cut, hold) => {
      if (tryKill(total) || second || holdAfter === undefined || total < holdAfter) return;
      // Past `holdAfter` the agent's bytes are slowed down (the portal goes on writing and
      // counting what it has), so the kill lands in the middle of the request however fast this
      // machine's disk and loopback are.
      hold(new Promise((r) => setTimeout(r, 20)).then(() => tryKill(relay.total())));
    });
    try {
      const home = tempDir("agent-home");
      expect((await runAgent(["login", "--portal", `http://127.0.0.1:${relay.port}`, "--token", token], { home })).code).toBe(0);
      const recording = tempDir("recording");
      recordEpisode(recording, { episode: 0, frames: 60, size: "320x240", noise: true });
      const repoId = `lab/crash-${unique()}`;
      const run = await runAgent(["upload", recording, "--dataset", repoId], { home, env: { GANTRY_AGENT_CHUNK_SIZE: String(chunk) } });
      expect(run.code, run.stderr).toBe(0);
      expect(killedAt).toBeGreaterThan(0);
      expect(run.stderr).toMatch(/(the connection to the portal broke|cannot reach the portal) \(\w+\); trying again in [\d.]+ s from where the portal got to \(1 of 8\)/);
      const raw = path.join(settings.EDGE_UPLOAD_DIR, orgId, "lab", repoId.split("/")[1]);
      for (const camera of ["front", "wrist"]) expect(sha(path.join(raw, "images", camera, "episode-000000", "frame-000059.png"))).toBe(sha(path.join(recording, "images", camera, "episode-000000", "frame-000059.png")));
      expect(await db.episode.count({ where: { dataset: { repoId }, number: 0 } })).toBe(1);
      const [, had, size] = /the portal has (\d+) of (\d+) bytes; going on from there/.exec(run.stderr) ?? [];
      return { stderr: run.stderr, killedAt, had: Number(had), size: Number(size), relayed: relay.total() };
    } finally {
      relay.close();
      await first.stop();
      await (await second)?.stop();
    }
  }

  it("resumes after the portal process is killed mid-upload and restarted, sending again at most one chunk", async () => {
    const chunk = 4 * 1024 * 1024;
    // Killed in the middle of the third chunk.
    const { stderr, killedAt, had, size, relayed } = await uploadThroughCrash({ chunk, killWhen: (relayed) => relayed > 2.5 * chunk });
    // The two chunks the portal had answered are kept, and of the third what reached its disk.
    expect(had, stderr).toBeGreaterThanOrEqual(2 * chunk);
    expect(had).toBeLessThan(killedAt);
    // What was sent to the portal, requests and all, is the archive and at most one chunk more.
    expect(relayed).toBeLessThan(size + chunk + 64 * 1024);
  }, 120_000);

  it("keeps what reached the portal's disk when its process is killed in the middle of a request", async () => {
    // One request for the whole episode, killed once the portal's record of it says it holds 2 MiB.
    let recorded = 0;
    const { stderr, killedAt, had, size } = await uploadThroughCrash({
      chunk: 64 * 1024 * 1024,
      holdAfter: 4 * 1024 * 1024,
      killWhen: (_, portalHome) => {
        const dir = path.join(portalHome, "uploads", "edge");
        const record = fs.existsSync(dir) ? fs.readdirSync(dir).find((n) => /^[0-9a-f]{32}\.json$/.test(n)) : undefined;
        recorded = record ? (JSON.parse(fs.readFileSync(path.join(dir, record), "utf8")) as { offset: number }).offset : 0;
        return recorded >= 2 * 1024 * 1024;
      },
    });
    expect(killedAt).toBeLessThan(size); // mid-request
    expect(had, stderr).toBeGreaterThanOrEqual(recorded);
  }, 120_000);

  const registering = (action: FrontAction) => (request: { method: string; pathname: string; count: number }) => (request.method === "POST" && request.pathname === "/api/edge/episodes" && request.count === 1 ? action : null);

  it("registers the episode once the portal answers again after a 500", async () => {
    const front = await startPortalFront(portal.port, registering({ status: 500, body: JSON.stringify({ error: { code: "INTERNAL", message: "Something went wrong on the portal" } }) }));
    try {
      const home = await loggedInHome(front.url);
      const recording = tempDir("recording");
      recordEpisode(recording, { episode: 0, frames: 3 });
      const repoId = `lab/five-hundred-${unique()}`;
      const run = await runAgent(["upload", recording, "--dataset", repoId], { home });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toMatch(/episode 0: registering it: the portal answered HTTP 500 \(Something went wrong on the portal\); trying again in [\d.]+ s \(1 of 8\)/);
      expect(run.stderr).toMatch(/queued for encoding/);
      expect(front.seen("POST", "/api/edge/episodes")).toBe(2);
      expect(await db.episode.count({ where: { dataset: { repoId } } })).toBe(1);
    } finally {
      await front.close();
    }
  });

  it("registers the episode once the portal takes connections again after refusing them", async () => {
    const front = await startPortalFront(portal.port, registering({ refuseForMs: 2500 }));
    try {
      const home = await loggedInHome(front.url);
      const recording = tempDir("recording");
      recordEpisode(recording, { episode: 0, frames: 3 });
      const repoId = `lab/refused-${unique()}`;
      const run = await runAgent(["upload", recording, "--dataset", repoId], { home });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toMatch(/episode 0: registering it: cannot reach the portal \(ECONNREFUSED\); trying again in [\d.]+ s \(\d of 8\)/);
      expect(run.stderr).toMatch(/queued for encoding/);
      expect(front.seen("POST", "/api/edge/episodes")).toBe(2);
      expect(await db.episode.count({ where: { dataset: { repoId } } })).toBe(1);
    } finally {
      await front.close();
    }
  });

  it("gives up after the tries it was given when the portal stays away, saying so; run again, it only registers", async () => {
    let uploadPath = "";
    const refusing = registering({ refuseForMs: 8000 });
    const front = await startPortalFront(portal.port, (request) => {
      if (request.method === "PATCH") uploadPath = request.pathname;
      return refusing(request);
    });
    try {
      const home = await loggedInHome(front.url);
      const recording = tempDir("recording");
      recordEpisode(recording, { episode: 0, frames: 3 });
      const repoId = `lab/away-${unique()}`;
      const run = await runAgent(["upload", recording, "--dataset", repoId], { home, env: { GANTRY_AGENT_RETRIES: "2" } });
      expect(run.code).toBe(1);
      expect(run.stderr.match(/registering it: .*; trying again/g)).toHaveLength(2);
      expect(run.stderr).toMatch(/Registering .* failed: Cannot reach the portal at .*: ECONNREFUSED \(gave up after 3 tries\); its files are on the portal/);
      expect(await db.episode.count({ where: { dataset: { repoId } } })).toBe(0);

      // The portal is back: the episode is registered, and its bytes are not sent again.
      await waitFor(async () => (await fetch(`${front.url}/api/edge/session`, { headers: { authorization: `Bearer ${token}` } }).catch(() => null))?.ok, { timeoutMs: 15_000, what: "the portal to be back" });
      const patches = front.seen("PATCH", uploadPath);
      const again = await runAgent(["upload", recording, "--dataset", repoId], { home });
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).toMatch(/the portal has (\d+) of \1 bytes; going on from there/);
      expect(again.stderr).toMatch(/queued for encoding/);
      expect(front.seen("PATCH", uploadPath)).toBe(patches + 1); // the empty one that finds it done
      expect(front.seen("POST", "/api/edge/uploads")).toBe(1);
      expect(await db.episode.count({ where: { dataset: { repoId } } })).toBe(1);
    } finally {
      await front.close();
    }
  }, 60_000);

  it("finishes an upload whose last answer was lost without sending it again", async () => {
    let uploadPath = "";
    const front = await startPortalFront(portal.port, ({ method, pathname, count }) => {
      if (method !== "PATCH" || !pathname.startsWith("/api/edge/uploads/") || count !== 1) return null;
      uploadPath = pathname;
      return { dropAnswer: true };
    });
    try {
      const home = await loggedInHome(front.url);
      const recording = tempDir("recording");
      recordEpisode(recording, { episode: 0, frames: 3 });
      const repoId = `lab/lost-answer-${unique()}`;
      const run = await runAgent(["upload", recording, "--dataset", repoId], { home });
      expect(run.code, run.stderr).toBe(0);
      // The portal had taken every byte and put the files in place; asked again, it says so.
      expect(run.stderr).toMatch(/the portal has (\d+) of \1 bytes; going on from there/);
      expect(run.stderr).not.toMatch(/starting it again/);
      expect(front.seen("PATCH", uploadPath)).toBe(2);
      expect(front.seen("POST", "/api/edge/uploads")).toBe(1);
      expect(await db.episode.count({ where: { dataset: { repoId } } })).toBe(1);
      const raw = path.join(uploadDir, orgId, "lab", repoId.split("/")[1]);
      expect(sha(path.join(raw, "data", "episode-000000.jsonl"))).toBe(sha(path.join(recording, "data", "episode-000000.jsonl")));
    } finally {
      await front.close();
    }
  });

  it("does not try again when the portal refuses the registration (4xx), and ends with its message", async () => {
    const revocable = await createApiToken(db, { actor: member, input: { name: "revoked mid-upload", scopes: ["write"] } });
    // The token is revoked just before the registration reaches the portal.
    const front = await startPortalFront(portal.port, async ({ method, pathname }) => {
      if (method === "POST" && pathname === "/api/edge/episodes") await revokeApiToken(db, { actor: member, tokenId: revocable.id });
      return null;
    });
    try {
      const home = await loggedInHome(front.url, revocable.token);
      const recording = tempDir("recording");
      recordEpisode(recording, { episode: 0, frames: 3 });
      const run = await runAgent(["upload", recording, "--dataset", `lab/revoked-${unique()}`], { home });
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/The portal refused POST \/api\/edge\/episodes \(HTTP 401\): That API token is not valid or has been revoked/);
      expect(run.stderr).not.toMatch(/trying again/);
      expect(front.seen("POST", "/api/edge/episodes")).toBe(1);
    } finally {
      await front.close();
    }
  });
});

/** A hand-made tus upload of an archive, as a misbehaving client would send it. */
async function tusUpload(body: Buffer, metadata: Record<string, string>, bearer = token): Promise<Response> {
  const encoded = Object.entries(metadata).map(([k, v]) => `${k} ${Buffer.from(v).toString("base64")}`).join(",");
  const created = await fetch(`${portal.url}/api/edge/uploads`, { method: "POST", headers: { authorization: `Bearer ${bearer}`, "tus-resumable": "1.0.0", "upload-length": String(body.length), "upload-metadata": encoded } });
  expect(created.status, await created.clone().text()).toBe(201);
  const location = new URL(created.headers.get("location")!, portal.url);
  return fetch(location, { method: "PATCH", headers: { authorization: `Bearer ${bearer}`, "tus-resumable": "1.0.0", "upload-offset": "0", "content-type": "application/offset+octet-stream" }, body: new Uint8Array(body) });
}

async function archiveOf(files: EpisodeFile[], repoId: string, episodeIndex = 0) {
  const archive = await buildEpisodeArchive({ repoId, episodeIndex, mode: "edge", files });
  const chunks: Buffer[] = [];
  for await (const c of archive.range(0, archive.size)) chunks.push(c as Buffer);
  return { archive, body: Buffer.concat(chunks) };
}

describe("the portal's upload checks", () => {
  const fileAt = (dir: string, rel: string, content: string): EpisodeFile => {
    const abs = path.join(dir, `f-${unique()}`);
    fs.writeFileSync(abs, content);
    return { rel, abs, size: content.length, mtimeMs: 0 };
  };
  const meta = (repoId: string, manifestSha256: string, episodeIndex = 0) => ({ format: ARCHIVE_FORMAT, repoId, episodeIndex: String(episodeIndex), mode: "edge", manifestSha256 });

  it("refuses names that could leave the episode's folder or land in another episode, and writes nothing", async () => {
    const dir = tempDir("bad");
    const repoId = `lab/bad-${unique()}`;
    for (const rel of ["images/front/episode-000000/../../../../escape.png", "../escape.png", "images/../data/episode-0.jsonl", "images/front/episode-000001/frame-000000.png", "/etc/passwd", "images/.hidden/episode-0/frame-0.png", "notes.txt"]) {
      const { archive, body } = await archiveOf([fileAt(dir, rel, "x"), fileAt(dir, "data/episode-000000.jsonl", "{}\n")], repoId);
      const response = await tusUpload(body, meta(repoId, archive.manifestSha256));
      expect(response.status, rel).toBe(400);
      expect(await response.text()).toMatch(/is not a file an episode may contain|belongs to episode 1/);
    }
    expect(fs.existsSync(path.join(uploadDir, orgId, "lab", repoId.split("/")[1]))).toBe(false);
    expect(fs.existsSync(path.join(uploadDir, "escape.png"))).toBe(false);
  });

  it("refuses a file whose bytes do not match its sha256, naming it, and keeps none of the episode", async () => {
    const dir = tempDir("damaged");
    const repoId = `lab/damaged-${unique()}`;
    const good = fileAt(dir, "images/front/episode-000000/frame-000000.png", "good frame");
    const bad = fileAt(dir, "images/front/episode-000000/frame-000001.png", "frame one");
    const { archive, body } = await archiveOf([good, bad, fileAt(dir, "data/episode-000000.jsonl", "{}\n")], repoId);
    // Flip one byte of frame 1 in transit.
    const at = body.indexOf("frame one");
    body[at] = "F".charCodeAt(0);
    const response = await tusUpload(body, meta(repoId, archive.manifestSha256));
    expect(response.status).toBe(400);
    expect(await response.text()).toMatch(/"images\/front\/episode-000000\/frame-000001.png" arrived damaged/);
    const raw = path.join(uploadDir, orgId, "lab", repoId.split("/")[1], "images", "front", "episode-000000");
    expect(fs.existsSync(raw) ? fs.readdirSync(raw) : []).toEqual([]);
  });

  it("refuses an archive whose manifest is not the one announced", async () => {
    const dir = tempDir("manifest");
    const repoId = `lab/manifest-${unique()}`;
    const { body } = await archiveOf([fileAt(dir, "data/episode-000000.jsonl", "{}\n")], repoId);
    const response = await tusUpload(body, meta(repoId, "0".repeat(64)));
    expect(response.status).toBe(400);
    expect(await response.text()).toMatch(/manifest does not match the sha256/);
  });

  it("refuses an archive of an earlier format, saying to update the agent", async () => {
    const repoId = `lab/old-${unique()}`;
    const encoded = Object.entries({ ...meta(repoId, "0".repeat(64)), format: "gantry-episode-tar/1" }).map(([k, v]) => `${k} ${Buffer.from(v).toString("base64")}`).join(",");
    const created = await fetch(`${portal.url}/api/edge/uploads`, { method: "POST", headers: { authorization: `Bearer ${token}`, "tus-resumable": "1.0.0", "upload-length": "2048", "upload-metadata": encoded } });
    expect(created.status).toBe(400);
    expect(await created.text()).toMatch(/update gantry-agent/);
  });

  it("keeps another organisation's upload to the same repo id out of ours, however it is named", async () => {
    // Organisation A records episode 0 of a dataset with the agent.
    const home = await loggedInHome();
    const recording = tempDir("recording");
    recordEpisode(recording, { episode: 0, frames: 4 });
    const repoId = `lab/pick-cube-${unique()}`;
    const ours = await runAgent(["upload", recording, "--dataset", repoId], { home });
    expect(ours.code, ours.stderr).toBe(0);
    const ourRaw = path.join(uploadDir, orgId, ...repoId.split("/"));
    const ourData = fs.readFileSync(path.join(ourRaw, "data", "episode-000000.jsonl"), "utf8");

    // An operator of organisation B names A's repo id in a tus upload, with forged frames, an
    // extra camera and an orgId of A's in the metadata.
    const b = await createOrgWithMember(db, "operator");
    const bToken = (await createApiToken(db, { actor: b.actor, input: { name: "intruder", scopes: ["write"] } })).token;
    const dir = tempDir("intruder");
    const forged = [
      fileAt(dir, "images/front/episode-000000/frame-000000.png", "forged frame"),
      fileAt(dir, "images/evilcam/episode-000000/frame-000000.png", "planted camera"),
      fileAt(dir, "data/episode-000000.jsonl", JSON.stringify({ "observation.state": [999, 999, 999, 999, 999, 999] }) + "\n"),
    ];
    const { archive, body } = await archiveOf(forged, repoId);
    const patched = await tusUpload(body, { ...meta(repoId, archive.manifestSha256), orgId }, bToken);
    expect(patched.status, await patched.clone().text()).toBe(204);

    // Nothing of B's reached A's folder; A's frames and data are as A sent them.
    expect(fs.existsSync(path.join(ourRaw, "images", "evilcam"))).toBe(false);
    expect(fs.readFileSync(path.join(ourRaw, "data", "episode-000000.jsonl"), "utf8")).toBe(ourData);
    expect(sha(path.join(ourRaw, "images", "front", "episode-000000", "frame-000000.png"))).toBe(sha(path.join(recording, "images", "front", "episode-000000", "frame-000000.png")));
    // B's bytes are in B's own folder, a dataset of its own when registered, and no answer of
    // B's tells it that A has this repo id.
    const theirRaw = path.join(uploadDir, b.orgId, ...repoId.split("/"));
    expect(fs.readFileSync(path.join(theirRaw, "images", "evilcam", "episode-000000", "frame-000000.png"), "utf8")).toBe("planted camera");
    const registered = await fetch(`${portal.url}/api/edge/episodes`, { method: "POST", headers: { authorization: `Bearer ${bToken}`, "content-type": "application/json" }, body: JSON.stringify({ repoId, episodeIndex: 0 }) });
    expect(registered.status, await registered.clone().text()).toBe(200);
    const theirs = await db.dataset.findUniqueOrThrow({ where: { orgId_repoId: { orgId: b.orgId, repoId } }, include: { episodes: true } });
    expect(theirs.episodes[0].cameras).toEqual(["evilcam", "front"]);

    // A uploads the same episode again later: it gets its own frames, and no evilcam.
    const again = await runAgent(["upload", recording, "--dataset", repoId, "--force"], { home });
    expect(again.code, again.stderr).toBe(0);
    const episode = await db.episode.findFirstOrThrow({ where: { orgId, number: 0, dataset: { repoId } } });
    expect(episode.cameras).toEqual(["front", "wrist"]);
    expect(fs.existsSync(path.join(ourRaw, "images", "evilcam"))).toBe(false);
    expect(fs.readFileSync(path.join(ourRaw, "data", "episode-000000.jsonl"), "utf8")).toBe(ourData);
  });

  it("refuses uploads without a token, and other organisations' uploads are not found", async () => {
    const anonymous = await fetch(`${portal.url}/api/edge/uploads`, { method: "POST", headers: { "tus-resumable": "1.0.0", "upload-length": "10" } });
    expect(anonymous.status).toBe(401);
    const created = await fetch(`${portal.url}/api/edge/uploads`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "tus-resumable": "1.0.0", "upload-length": "4096", "upload-metadata": Object.entries(meta("lab/other", "a".repeat(64))).map(([k, v]) => `${k} ${Buffer.from(v).toString("base64")}`).join(",") },
    });
    expect(created.status).toBe(201);
    const other = await createOrgWithMember(db, "operator");
    const otherToken = (await createApiToken(db, { actor: other.actor, input: { name: "other", scopes: ["write"] } })).token;
    const head = await fetch(new URL(created.headers.get("location")!, portal.url), { method: "HEAD", headers: { authorization: `Bearer ${otherToken}`, "tus-resumable": "1.0.0" } });
    expect(head.status).toBe(404);
    const own = await fetch(new URL(created.headers.get("location")!, portal.url), { method: "HEAD", headers: { authorization: `Bearer ${token}`, "tus-resumable": "1.0.0" } });
    expect(own.status).toBe(200);
    expect(own.headers.get("upload-offset")).toBe("0");
  });
});

describe("gantry-agent watch", () => {
  it("uploads each episode once its recording has finished, and not before", async () => {
    const home = await loggedInHome();
    const recording = tempDir("recording");
    const repoId = `lab/watch-${unique()}`;
    let watcher: import("node:child_process").ChildProcess | null = null;
    const done = runAgent(["watch", recording, "--dataset", repoId, "--quiet", "1"], { home, onSpawn: (c) => (watcher = c) });
    try {
      // Frames without a data file: still recording, nothing is sent.
      recordEpisode(recording, { episode: 0, frames: 5 });
      fs.rmSync(path.join(recording, "data", "episode-000000.jsonl"));
      await new Promise((r) => setTimeout(r, 2500));
      expect(await db.episode.count({ where: { dataset: { repoId } } })).toBe(0);
      recordEpisode(recording, { episode: 0, frames: 5 });
      await waitFor(() => db.episode.findFirst({ where: { dataset: { repoId }, number: 0 } }), { timeoutMs: 20_000, what: "episode 0" });
      recordEpisode(recording, { episode: 1, frames: 5 });
      await waitFor(() => db.episode.findFirst({ where: { dataset: { repoId }, number: 1 } }), { timeoutMs: 20_000, what: "episode 1" });
    } finally {
      watcher!.kill("SIGTERM");
    }
    const run = await done;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr.match(/queued for encoding/g)).toHaveLength(2);
  });
});

describe("a nearly full disk", () => {
  it("refuses new uploads with a message that says so, and alerts the organisation", async () => {
    const full = await startTestPortal({ GANTRY_HOME: tempDir("portal-home"), EDGE_UPLOAD_DIR: tempDir("edge-uploads"), EDGE_MIN_FREE_DISK_BYTES: String(1e15) });
    try {
      const home = await loggedInHome(full.url);
      const recording = tempDir("recording");
      recordEpisode(recording, { episode: 0, frames: 3 });
      const run = await runAgent(["upload", recording, "--dataset", `lab/full-${unique()}`], { home });
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/HTTP 507.*disk is nearly full.*EDGE_MIN_FREE_DISK_BYTES/);
      const again = await runAgent(["upload", recording, "--dataset", `lab/full-${unique()}`], { home });
      expect(again.code).toBe(1);
      const alerts = await db.alert.findMany({ where: { orgId, kind: "edge.disk_low" } });
      expect(alerts).toHaveLength(1);
      expect(alerts[0]).toMatchObject({ severity: "critical" });
    } finally {
      await full.stop();
    }
  });
});
