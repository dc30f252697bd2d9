import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../tests/helpers/db";
import { createOrgWithMember } from "../tests/helpers/factories";
import { createApiToken } from "../server/auth/tokens.service";
import { buildAgent, recordEpisode, runAgent, startTestPortal, tempDir, type TestPortal } from "./test-helpers";

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

/**
 * A front that sends new connections to `backends[current]`. `lose()` drops every client
 * connection without telling the process behind, whose request then waits for bytes that never
 * come (as behind a dead NAT entry), and sends later connections to the next backend.
 */
async function startFront(backends: number[]) {
  let current = 0;
  const bytesTo = backends.map(() => 0);
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; isHung: boolean }>();
  const server = net.createServer((client) => {
    const backend = current;
    const pair = { client, upstream: net.connect(backends[backend], "127.0.0.1"), isHung: false };
    const { upstream } = pair;
    pairs.add(pair);
    client.on("data", (d: Buffer) => {
      bytesTo[backend] += d.length;
      if (!upstream.write(d)) client.pause();
    });
    upstream.on("drain", () => client.resume());
    upstream.on("data", (d: Buffer) => client.write(d));
    client.on("close", () => {
      if (!pair.isHung) upstream.destroy();
    });
    upstream.on("close", () => {
      client.destroy();
      pairs.delete(pair);
    });
    client.on("error", () => {});
    upstream.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    bytesTo,
    lose() {
      current = (current + 1) % backends.length;
      for (const pair of pairs) {
        pair.isHung = true;
        pair.client.removeAllListeners("data");
        pair.client.destroy();
      }
    },
    /** Ends the connections left hanging, as their TCP timeouts eventually would. */
    close() {
      server.close();
      for (const pair of pairs) pair.upstream.destroy();
    },
  };
}

describe("an agent upload across two web processes", () => {
  it("resumes on the other process while the first still holds the cut request, and ends with the right bytes", async () => {
    // The first process's request hangs until the second asks it, through Postgres, to let the upload go.
    const front = await startFront(portals.map((p) => p.port));
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
