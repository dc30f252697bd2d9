import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { z } from "zod";

// The agent keeps its settings in ~/.gantry/agent.json (GANTRY_AGENT_HOME moves the folder,
// for tests and for several agents on one machine). The file holds an API token: mode 0600.

const configSchema = z.object({
  portal: z.url(),
  token: z.string().min(1),
  orgName: z.string().optional(),
});
export type AgentConfig = z.infer<typeof configSchema>;

export class AgentError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "AgentError";
  }
}

export function agentHome(): string {
  return path.resolve(process.env.GANTRY_AGENT_HOME || path.join(os.homedir(), ".gantry"));
}

export const configPath = () => path.join(agentHome(), "agent.json");

export function loadConfig(): AgentConfig {
  const file = configPath();
  let raw: string;
  try {
    raw = fs.readFileSync(file, "utf8");
  } catch {
    throw new AgentError(`Not logged in: run \`gantry-agent login --portal <url> --token <token>\` first (no ${file})`, 2);
  }
  let json: unknown = null;
  try {
    json = JSON.parse(raw);
  } catch {
    /* reported below */
  }
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) throw new AgentError(`${file} is damaged: run \`gantry-agent login\` again`, 2);
  return parsed.data;
}

export function saveConfig(config: AgentConfig): void {
  const dir = agentHome();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = configPath();
  const temp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temp, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
  fs.renameSync(temp, file);
  fs.chmodSync(file, 0o600);
}

/**
 * Bytes of an episode's archive sent per request, unless GANTRY_AGENT_CHUNK_SIZE says otherwise:
 * the most a resume sends again. Each request costs the portal a pause (checking the token,
 * putting the bytes on disk before it answers): at 8 MiB a loopback upload ran a quarter to a
 * half slower than in one request and fell behind rsync; at 32 MiB it is within 10 %.
 */
export const DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024;
/** Tries in a row that get nowhere before a transfer or a call to the portal is given up. */
export const DEFAULT_RETRIES = 8;

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3 };

/** "8MiB", "512KiB", "1GiB" (or K, M, G) or a number of bytes. */
export function parseByteSize(value: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new AgentError(`${what} must be a size such as 8MiB, 512KiB or a number of bytes, not "${value}"`, 2);
  return Math.round(Number(m[1]) * unit);
}

export interface TransferSettings {
  /** Bytes per upload request: what a resume after a crash may send again, at most. */
  chunkBytes: number;
  /** Tries in a row without progress before giving up. */
  retries: number;
}

/** GANTRY_AGENT_CHUNK_SIZE (default 32MiB, from 64KiB to 1GiB) and GANTRY_AGENT_RETRIES (default 8). */
export function transferSettings(env: NodeJS.ProcessEnv = process.env): TransferSettings {
  const chunkBytes = env.GANTRY_AGENT_CHUNK_SIZE ? parseByteSize(env.GANTRY_AGENT_CHUNK_SIZE, "GANTRY_AGENT_CHUNK_SIZE") : DEFAULT_CHUNK_BYTES;
  if (chunkBytes < 64 * 1024 || chunkBytes > 1024 ** 3) throw new AgentError(`GANTRY_AGENT_CHUNK_SIZE must be between 64KiB and 1GiB, not "${env.GANTRY_AGENT_CHUNK_SIZE}"`, 2);
  const retries = env.GANTRY_AGENT_RETRIES ? Number(env.GANTRY_AGENT_RETRIES) : DEFAULT_RETRIES;
  if (!Number.isInteger(retries) || retries < 0 || retries > 100) throw new AgentError(`GANTRY_AGENT_RETRIES must be a whole number from 0 to 100, not "${env.GANTRY_AGENT_RETRIES}"`, 2);
  return { chunkBytes, retries };
}
