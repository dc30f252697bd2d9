import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { AppError } from "../errors";

// The edge agent as the portal serves it: the single file `npm run build:agent` makes
// (agent/build.mjs), built by `npm start` when missing.

export const AGENT_FILENAME = "gantry-agent.cjs";

export function agentBuildPath(): string {
  return path.join(/*turbopackIgnore: true*/ process.cwd(), "agent", "dist", AGENT_FILENAME);
}

let cachedDigest: { key: string; sha256: string } | null = null;

async function sha256Of(file: string, key: string): Promise<string> {
  if (cachedDigest?.key === key) return cachedDigest.sha256;
  const hash = crypto.createHash("sha256");
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  cachedDigest = { key, sha256: hash.digest("hex") };
  return cachedDigest.sha256;
}

/** The built agent to send: a stream of it, its size and its SHA-256 (for checking the copy). */
export async function openAgentDownload(file = agentBuildPath()): Promise<{ stream: fs.ReadStream; bytes: number; sha256: string; filename: string }> {
  const stat = await fs.promises.stat(file).catch(() => null);
  if (!stat?.isFile()) {
    throw new AppError("NOT_FOUND", "The edge agent has not been built on this server yet: run npm run build:agent in Gantry's folder (npm start builds it when it starts)");
  }
  const sha256 = await sha256Of(file, `${file}:${stat.size}:${stat.mtimeMs}`);
  return { stream: fs.createReadStream(file), bytes: stat.size, sha256, filename: AGENT_FILENAME };
}
