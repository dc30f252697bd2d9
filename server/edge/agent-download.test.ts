import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { openAgentDownload } from "./agent-download.service";

async function read(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe("agent download", () => {
  it("sends the built file with its size and SHA-256, and a rebuilt one afresh", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-agent-download-"));
    const file = path.join(dir, "gantry-agent.cjs");
    fs.writeFileSync(file, "#!/usr/bin/env node\nconsole.log('agent');\n");
    const first = await openAgentDownload(file);
    expect(first).toMatchObject({ filename: "gantry-agent.cjs", bytes: fs.statSync(file).size, sha256: crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex") });
    expect(await read(first.stream)).toEqual(fs.readFileSync(file));

    fs.writeFileSync(file, "#!/usr/bin/env node\nconsole.log('agent, rebuilt');\n");
    fs.utimesSync(file, new Date(), new Date(Date.now() + 5_000));
    const second = await openAgentDownload(file);
    expect(second.sha256).toBe(crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex"));
    expect((await read(second.stream)).toString()).toContain("rebuilt");
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("says how to build the agent when it has not been built", async () => {
    await expect(openAgentDownload(path.join(os.tmpdir(), "no-such-dir", "gantry-agent.cjs"))).rejects.toMatchObject({
      code: "NOT_FOUND",
      message: "The edge agent has not been built on this server yet: run npm run build:agent in Gantry's folder (npm start builds it when it starts)",
    });
  });
});
