// Bundles the agent into one CommonJS file for Node 20 (pure JavaScript: runs on arm64 and x64).
// serialport stays external: its native binding is looked up beside its own package at run
// time, which a bundle cannot keep; the motor commands load it when they first need it.
import path from "node:path";
import { build } from "esbuild";

const root = path.dirname(new URL(import.meta.url).pathname);
const outfile = path.join(root, "dist", "gantry-agent.cjs");

await build({
  entryPoints: [path.join(root, "main.ts")],
  outfile,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  banner: { js: "#!/usr/bin/env node" },
  legalComments: "none",
  external: ["serialport"],
  logLevel: "warning",
});
console.log(`Built ${path.relative(process.cwd(), outfile)}`);
