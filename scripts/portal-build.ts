import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

// The portal's production build (.next/), made when there is none or a source file is newer
// than it: by `npm start`, and by the benchmarks that run real web processes.

export function buildPortalIfNeeded(childEnv: NodeJS.ProcessEnv, log: (message: string) => void): void {
  const buildId = path.resolve(".next/BUILD_ID");
  const builtAt = fs.existsSync(buildId) ? fs.statSync(buildId).mtimeMs : 0;
  const newest = Math.max(...["app", "components", "server", "public", "next.config.ts", "package-lock.json", "postcss.config.mjs"].map(newestMtime));
  if (builtAt > newest) return;
  log(builtAt ? "Sources changed since the last build; rebuilding the portal" : "Building the portal (first start only)…");
  const result = spawnSync(path.resolve("node_modules/.bin/next"), ["build"], { stdio: "inherit", env: { ...childEnv, NEXT_TELEMETRY_DISABLED: "1" } });
  if (result.status !== 0) throw new Error("The portal build failed; see the output above");
}

function newestMtime(p: string): number {
  if (!fs.existsSync(p)) return 0;
  const stat = fs.statSync(p);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of fs.readdirSync(p, { withFileTypes: true })) {
    if (entry.name === "generated" || entry.name === "node_modules") continue;
    newest = Math.max(newest, newestMtime(path.join(p, entry.name)));
  }
  return newest;
}
