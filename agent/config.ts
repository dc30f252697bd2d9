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
