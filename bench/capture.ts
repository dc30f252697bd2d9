import zlib from "node:zlib";
import { compare, printResults } from "./lib/stats";
import { parsePly, writePly } from "../server/captures/ply";
import { encodeSpz } from "../server/captures/spz";
import { randomCloud } from "../server/captures/test-clouds";

// `npx tsx bench/capture.ts` — snapshot conversion on a seeded BENCH_SPLATS-splat SH-3 cloud
// (default 1M) shaped like a trained scene (room-sized positions, SH rest mostly near zero):
//   speed: PLY → parse and validate → SPZ v3 (gzip, Z_RLE), splats/s, best of BENCH_RUNS; beside it,
//          for context, gzip -6 of the same PLY (what a server would do without SPZ);
//   size:  SPZ bytes against the PLY, and gzip of the PLY against the PLY for context.
// No SPZ reference tool runs on this machine, so the reference columns are plain gzip.

const SPLATS = Number(process.env.BENCH_SPLATS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 2);

const ply = writePly(randomCloud(SPLATS, 3, 42));
let ours = Infinity;
let spzBytes = 0;
for (let r = 0; r < RUNS; r++) {
  const t = performance.now();
  spzBytes = encodeSpz(parsePly(ply)).length;
  ours = Math.min(ours, (performance.now() - t) / 1000);
}
const t = performance.now();
const gzBytes = zlib.gzipSync(ply, { level: 6 }).length;
const gzip = (performance.now() - t) / 1000;

printResults("capture", [
  compare(`PLY → SPZ, ${SPLATS} splats SH 3 (reference: gzip -6 of the PLY)`, SPLATS / ours, SPLATS / gzip, "splats/s", "≥ 1000000 splats/s"),
  compare("SPZ bytes / PLY bytes (reference: gzip -6 of the PLY / PLY)", spzBytes / ply.length, gzBytes / ply.length, "fraction", "≤ 0.125"),
  compare("PLY bytes (context)", ply.length, ply.length, "bytes", "context: input size"),
]);
