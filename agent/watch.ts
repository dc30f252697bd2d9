import fs from "node:fs";
import path from "node:path";
import type { UploadMode } from "../server/edge/edge.schemas";
import { agentHome, transferSettings, type AgentConfig } from "./config";
import { scanRecording, type EpisodeOnDisk } from "./layout";
import type { Progress } from "./progress";
import { uploadEpisode } from "./upload";

// `gantry-agent watch`: uploads each episode of a recording folder once its recording has
// finished. An episode counts as finished when its data file (data/episode-<n>.jsonl|parquet)
// exists and none of its files has changed for the quiet period — or for one second once the
// next episode has started, since a recorder begins the next episode only after saving this one.
// Uploaded episodes are remembered in the agent's folder, so a restart does not send them again.

export interface WatchOptions {
  config: AgentConfig;
  root: string;
  repoId: string;
  mode: UploadMode;
  task?: string;
  fps?: number;
  quietMs: number;
  pollMs: number;
  progress: Progress;
  signal: AbortSignal;
}

const NEXT_EPISODE_QUIET_MS = 1000;
const RETRY_AFTER_MS = [2000, 5000, 15_000, 30_000, 60_000];

type Done = Record<string, { manifestSha256: string | null; at: string }>;
const donePath = () => path.join(agentHome(), "watched.json");

function readDone(): Done {
  try {
    return JSON.parse(fs.readFileSync(donePath(), "utf8")) as Done;
  } catch {
    return {};
  }
}

function writeDone(done: Done) {
  fs.mkdirSync(agentHome(), { recursive: true, mode: 0o700 });
  const temp = `${donePath()}.${process.pid}.tmp`;
  fs.writeFileSync(temp, JSON.stringify(done, null, 2), { mode: 0o600 });
  fs.renameSync(temp, donePath());
}

/** Whether an episode's recording has finished, by the rule above. */
export function isEpisodeFinished(e: EpisodeOnDisk, all: Map<number, EpisodeOnDisk>, now: number, quietMs: number): boolean {
  if (!e.data) return false;
  const hasNext = [...all.keys()].some((i) => i > e.index);
  const quiet = hasNext ? Math.min(quietMs, NEXT_EPISODE_QUIET_MS) : quietMs;
  return now - e.lastChangeMs >= quiet;
}

export async function watchRecording(opts: WatchOptions): Promise<void> {
  const root = path.resolve(opts.root);
  // Bad settings stop the command at once rather than fail every episode in turn.
  const transfer = transferSettings();
  const keyOf = (index: number) => `${opts.config.portal}|${opts.repoId}|${root}|${index}`;
  const failures = new Map<number, { count: number; retryAt: number }>();
  opts.progress.log(`Watching ${root} for finished episodes of ${opts.repoId} (mode ${opts.mode === "edge" ? "2, raw frames" : "0, local encode"}); Ctrl-C to stop`);
  while (!opts.signal.aborted) {
    const done = readDone();
    const episodes = scanRecording(root);
    const ready = [...episodes.values()].filter((e) => !done[keyOf(e.index)] && isEpisodeFinished(e, episodes, Date.now(), opts.quietMs)).sort((a, b) => a.index - b.index);
    for (const episode of ready) {
      if (opts.signal.aborted) break;
      const failed = failures.get(episode.index);
      if (failed && Date.now() < failed.retryAt) continue;
      try {
        const result = await uploadEpisode({ ...opts, root, episode, transfer });
        done[keyOf(episode.index)] = { manifestSha256: result.manifestSha256, at: new Date().toISOString() };
        writeDone({ ...readDone(), [keyOf(episode.index)]: done[keyOf(episode.index)] });
        failures.delete(episode.index);
      } catch (error) {
        const count = (failed?.count ?? 0) + 1;
        const wait = RETRY_AFTER_MS[Math.min(count - 1, RETRY_AFTER_MS.length - 1)];
        failures.set(episode.index, { count, retryAt: Date.now() + wait });
        opts.progress.log(`Episode ${episode.index}: ${(error as Error).message} — trying again in ${wait / 1000} s`);
      }
    }
    await new Promise<void>((resolve) => {
      const stop = () => (clearTimeout(timer), resolve());
      const timer = setTimeout(() => (opts.signal.removeEventListener("abort", stop), resolve()), opts.pollMs);
      opts.signal.addEventListener("abort", stop, { once: true });
    });
  }
}
