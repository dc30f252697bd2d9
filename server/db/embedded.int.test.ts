import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../../tests/helpers/sshd-rig";
import { startEmbeddedPostgres } from "./embedded";
import { migrate } from "./migrate";

// The embedded default on a fresh folder: created once, kept between runs, and recovered
// when an earlier run was killed outright.

const home = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-embedded-"));
fs.chmodSync(home, 0o755);
const port = await freePort();
afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

async function count(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const { rows } = await c.query<{ n: string }>(`SELECT count(*) AS n FROM "Org"`);
  await c.end();
  return Number(rows[0].n);
}

describe("embedded Postgres", () => {
  it("creates a cluster, keeps data between runs, and takes over from a killed run", { timeout: 120_000 }, async () => {
    const first = await startEmbeddedPostgres({ home, port });
    await migrate({ url: first.url });
    const c = new pg.Client({ connectionString: first.url });
    await c.connect();
    await c.query(`INSERT INTO "Org" (id, name, slug) VALUES (gen_random_uuid(), 'Kept', 'kept')`);
    await c.end();
    await first.stop();

    const second = await startEmbeddedPostgres({ home, port });
    expect(await count(second.url)).toBe(1);
    expect(await migrate({ url: second.url })).toEqual([]);
    // Simulate a start that died without stopping its database: the server keeps running.
    const pid = Number(fs.readFileSync(path.join(home, "pg", "postmaster.pid"), "utf8").split("\n")[0]);
    expect(pid).toBeGreaterThan(0);

    const messages: string[] = [];
    const third = await startEmbeddedPostgres({ home, port, log: (m) => messages.push(m) });
    expect(messages.join("\n")).toContain(`left running by an earlier start`);
    expect(await count(third.url)).toBe(1);
    await third.stop();
    await second.stop(); // already gone: a no-op
  });

  it("says clearly when the port is taken", { timeout: 60_000 }, async () => {
    const other = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-embedded-"));
    fs.chmodSync(other, 0o755);
    const blocker = spawn(process.execPath, ["-e", `require("net").createServer().listen(${port + 1}, "127.0.0.1"); setTimeout(() => {}, 60000)`]);
    await new Promise((r) => setTimeout(r, 300));
    try {
      await expect(startEmbeddedPostgres({ home: other, port: port + 1 })).rejects.toThrow(/stopped while starting[\s\S]*(could not bind|Address already in use)/);
    } finally {
      blocker.kill();
      fs.rmSync(other, { recursive: true, force: true });
    }
  });
});
