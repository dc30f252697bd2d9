import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { createApiToken } from "../auth/tokens.service";
import { recordEpisode, rsyncOverSsh, startTestPortal, startTestSshd, tempDir, type TestPortal, type TestSshd } from "../../agent/test-helpers";

// The earlier edge clients: frames rsync'ed over SSH into EDGE_UPLOAD_DIR/<org id>/<repo_id>/, then
// POST /edge/upload-complete and GET /edge/status/{repo_id}. Real rsync, real OpenSSH sshd.

const db = testDb();
let sshd: TestSshd;
let portal: TestPortal;
let uploadDir: string;
let token: string;
let orgId: string;

beforeAll(async () => {
  sshd = await startTestSshd();
  const { actor } = await createOrgWithMember(db, "operator");
  orgId = actor.orgId;
  token = (await createApiToken(db, { actor, input: { name: "edge client", scopes: ["write"] } })).token;
  uploadDir = tempDir("edge-uploads");
  portal = await startTestPortal({ GANTRY_HOME: tempDir("portal-home"), EDGE_UPLOAD_DIR: uploadDir, EDGE_MIN_FREE_DISK_BYTES: "0" });
}, 120_000);

afterAll(async () => {
  sshd?.stop();
  await portal?.stop();
});

const rsync = (from: string, to: string) => rsyncOverSsh(sshd, from, to);

const call = (method: string, pathname: string, body?: unknown, bearer = token) =>
  fetch(`${portal.url}${pathname}`, { method, headers: { authorization: `Bearer ${bearer}`, ...(body ? { "content-type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });

describe("the earlier rsync upload path", () => {
  it("takes frames rsync'ed over SSH, queues the episode on upload-complete, and reports status without any credential", async () => {
    const recording = tempDir("recording");
    recordEpisode(recording, { episode: 0, frames: 20 });
    const repoId = `lab/rsync-${crypto.randomBytes(4).toString("hex")}`;
    rsync(recording, path.join(uploadDir, orgId, ...repoId.split("/")));
    expect(fs.readdirSync(path.join(uploadDir, orgId, ...repoId.split("/"), "images", "front", "episode-000000"))).toHaveLength(20);

    const complete = await call("POST", "/edge/upload-complete", { repo_id: repoId, episode_index: 0 });
    expect(complete.status).toBe(200);
    const answer = await complete.json();
    expect(answer).toMatchObject({ status: "encoding" });
    expect(answer.message).toMatch(/Episode 0 of lab\/rsync-\w+ is queued for encoding/);
    const episode = await db.episode.findFirstOrThrow({ where: { dataset: { repoId }, number: 0 } });
    expect(episode).toMatchObject({ mode: "edge", cameras: ["front", "wrist"] });

    const again = await (await call("POST", "/edge/upload-complete", { repo_id: repoId, episode_index: 0 })).json();
    expect(again.message).toMatch(/already registered/);
    expect(await db.episode.count({ where: { dataset: { repoId } } })).toBe(1);

    const status = await call("GET", `/edge/status/${repoId}`);
    expect(status.status).toBe(200);
    const body = await status.json();
    expect(body).toEqual({ repo_id: repoId, status: "ENCODING", progress: 0, message: expect.any(String), episodes: { total: 1, encoded: 0, failed: 0 } });
    expect(JSON.stringify(body)).not.toMatch(/password|ssh|secret|token|key/i);
  });

  it("names what is missing from an incomplete episode, and refuses callers without a token or of another organisation", async () => {
    const recording = tempDir("recording");
    recordEpisode(recording, { episode: 4, frames: 3 });
    fs.rmSync(path.join(recording, "data"), { recursive: true });
    const repoId = `lab/partial-${crypto.randomBytes(4).toString("hex")}`;
    rsync(recording, path.join(uploadDir, orgId, ...repoId.split("/")));
    const incomplete = await call("POST", "/edge/upload-complete", { repo_id: repoId, episode_index: 4 });
    expect(incomplete.status).toBe(400);
    expect((await incomplete.json()).error.message).toMatch(/Episode 4 is incomplete.*data\/episode-4\.jsonl/);

    const badName = await call("POST", "/edge/upload-complete", { repo_id: "../../etc", episode_index: 0 });
    expect(badName.status).toBe(400);

    const anonymous = await fetch(`${portal.url}/edge/status/${repoId}`);
    expect(anonymous.status).toBe(401);
    const other = await createOrgWithMember(db, "operator");
    const otherToken = (await createApiToken(db, { actor: other.actor, input: { name: "other", scopes: ["write"] } })).token;
    recordEpisode(recording, { episode: 4, frames: 3 });
    rsync(recording, path.join(uploadDir, orgId, ...repoId.split("/")));
    expect((await call("POST", "/edge/upload-complete", { repo_id: repoId, episode_index: 4 })).status).toBe(200);
    expect((await call("GET", `/edge/status/${repoId}`, undefined, otherToken)).status).toBe(404);
    // The other organisation's repo id of that name is its own, with nothing in its folder yet.
    const theirs = await call("POST", "/edge/upload-complete", { repo_id: repoId, episode_index: 4 }, otherToken);
    expect(theirs.status).toBe(400);
    // Most often the frames went to another web machine's folder: the answer says where they must be.
    expect((await theirs.json()).error.message).toMatch(/Nothing of lab\/partial-\w+ has arrived in this portal machine's upload folder.*EDGE_UPLOAD_DIR must be one folder they all mount/);
  });
});
