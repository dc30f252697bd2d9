import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { agentBuildPath } from "../server/edge/agent-download.service";

// The edge agent the portal offers for download (Settings → API tokens) is the one file
// `npm run build:agent` makes. `npm start` builds it when it is missing or older than its
// sources (the agent and the protocol files it bundles from server/edge).

const SOURCES = ["agent", "server/edge"];

function newestSource(p: string): number {
  const stat = fs.statSync(p);
  if (!stat.isDirectory()) return /\.(ts|mjs)$/.test(p) && !/\.test\.ts$/.test(p) ? stat.mtimeMs : 0;
  let newest = 0;
  for (const entry of fs.readdirSync(p)) if (entry !== "dist" && entry !== "node_modules") newest = Math.max(newest, newestSource(path.join(p, entry)));
  return newest;
}

/** Builds the agent when needed; a failed build is logged and the portal starts anyway (its download page says the file is missing). */
export function buildAgentIfNeeded(log: (message: string) => void): void {
  const file = agentBuildPath();
  const builtAt = fs.existsSync(file) ? fs.statSync(file).mtimeMs : 0;
  if (builtAt > Math.max(...SOURCES.filter((s) => fs.existsSync(s)).map(newestSource))) return;
  log(builtAt ? "The edge agent's sources changed; rebuilding it" : "Building the edge agent for download (first start only)…");
  const result = spawnSync(process.execPath, [path.resolve("agent/build.mjs")], { stdio: "inherit" });
  if (result.status !== 0) log("Could not build the edge agent (see above); the portal starts without it — run npm run build:agent to try again");
}
