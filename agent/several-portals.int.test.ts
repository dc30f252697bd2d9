import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../tests/helpers/db";
import { createOrgWithMember } from "../tests/helpers/factories";
import { createApiToken } from "../server/auth/tokens.service";
import { buildAgent, recordEpisode, runAgent, startBalancer, startTestPortal, tempDir, type TestPortal } from "./test-helpers";

// Two web processes sharing one database and one upload folder, behind a front that sends each
// new connection to one of them, as a load balancer without sticky sessions does. An upload
// begun on one process resumes on the other, which has never seen it.

const db = testDb();
let portals: TestPortal[] = [];
let settings: Record<string, string>;
let token: string;
let orgId: string;

const sha = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");

beforeAll(async () => {
  buildAgent();
  const { actor, orgId: org } = await createOrgWithMember(db, "operator");
  orgId = org;
  token = (await createApiToken(db, { actor, input: { name: "agent", scopes: ["write"] } })).token;
  settings = { GANTRY_HOME: tempDir("portal-home"), EDGE_UPLOAD_DIR: tempDir("edge-uploads"), EDGE_MIN_FREE_DISK_BYTES: "0" };
  portals = await Promise.all([startTestPortal(settings), startTestPortal(settings)]);
}, 120_000);

afterAll(async () => {
  await Promise.all(portals.map((p) => p.stop()));
});

describe("an agent upload across two web processes", () => {
  it("resumes on the other process while the first still holds the cut request, and ends with the right bytes", async () => {
    // The first process's request hangs until the second asks it, through Postgres, to let the upload go.
    const front = await startBalancer(portals.map((p) => p.port));
    let isLost = false;
    const home = tempDir("agent-home");
    try {
      expect((await runAgent(["login", "--portal", front.url, "--token", token], { home })).code).toBe(0);
      const recording = tempDir("recording");
      recordEpisode(recording, { episode: 0, frames: 60, size: "320x240", noise: true });
      const repoId = `lab/two-portals-${crypto.randomBytes(4).toString("hex")}`;
      const watcher = setInterval(() => {
        if (!isLost && front.bytesTo[0] > 8_000_000) {
          isLost = true;
          front.lose();
        }
      }, 5);
      const run = await runAgent(["upload", recording, "--dataset", repoId], { home });
      clearInterval(watcher);
      expect(run.code, run.stderr).toBe(0);
      expect(isLost).toBe(true);
      // The resume went to the second process, which had never seen this upload.
      expect(front.bytesTo[1], run.stderr).toBeGreaterThan(1_000_000);
      const resumedAt = Number(/resumed at ([\d.]+) MB/.exec(run.stderr)?.[1] ?? 0) * 1e6;
      expect(resumedAt, run.stderr).toBeGreaterThan(1_000_000);
      const raw = path.join(settings.EDGE_UPLOAD_DIR, orgId, "lab", repoId.split("/")[1]);
      for (const camera of ["front", "wrist"]) {
        for (const frame of ["frame-000000.png", "frame-000030.png", "frame-000059.png"]) {
          const name = path.join("images", camera, "episode-000000", frame);
          expect(sha(path.join(raw, name)), name).toBe(sha(path.join(recording, name)));
        }
      }
      expect(fs.readFileSync(path.join(raw, "data", "episode-000000.jsonl"), "utf8")).toBe(fs.readFileSync(path.join(recording, "data", "episode-000000.jsonl"), "utf8"));
      expect(await db.episode.count({ where: { dataset: { repoId }, number: 0 } })).toBe(1);
      // The first process's cut request ended before the second went on (it was asked to let go),
      // so its last word on the upload, said when its connection finally closes, does not undo
      // the finished record.
      front.close();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const records = fs.readdirSync(path.join(settings.GANTRY_HOME, "uploads", "edge")).filter((n) => n.endsWith(".json"));
      const finished = records.map((n) => JSON.parse(fs.readFileSync(path.join(settings.GANTRY_HOME, "uploads", "edge", n), "utf8"))).filter((r) => r.metadata?.repoId === repoId);
      expect(finished).toMatchObject([{ committed: true }]);
    } finally {
      front.close();
    }
  });
});
