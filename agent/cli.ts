import os from "node:os";
import path from "node:path";
import { Command, Option } from "commander";
import { agentSessionSchema, compatStatusSchema, edgeRepoIdSchema, offloadModes, type UploadMode } from "../server/edge/edge.schemas";
import { agentNameSchema } from "../server/hardware/hardware.schemas";
import { builtInCommands } from "./commands";
import { AgentError, agentHome, configPath, DEFAULT_RETRIES, loadConfig, saveConfig } from "./config";
import { AgentConnection } from "./connection";
import { scanRecording } from "./layout";
import { portalFetch } from "./portal";
import { pullModel } from "./pull-model";
import { createProgress } from "./progress";
import { uploadEpisode } from "./upload";
import { isEpisodeFinished, watchRecording } from "./watch";

// gantry-agent: runs on the robot's computer and hands recorded episodes to a Gantry portal.
// Exit codes: 0 done, 1 something failed (the message says what), 2 usage or configuration.

function parseMode(value: string | undefined, from: string): UploadMode {
  if (value === undefined || value === "") return "edge";
  const mode = offloadModes[value as unknown as keyof typeof offloadModes] ?? (value === "edge" || value === "local" ? value : undefined);
  if (!mode) throw new AgentError(`${from} must be 2 (raw frames to Gantry, which encodes) or 0 (encode here with ffmpeg), not "${value}"`, 2);
  return mode;
}

function parseRepoId(value: string): string {
  const parsed = edgeRepoIdSchema.safeParse(value);
  if (!parsed.success) throw new AgentError(`--dataset "${value}" ${parsed.error.issues[0].message}`, 2);
  return parsed.data;
}

function parsePositiveInt(value: string, what: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new AgentError(`${what} must be a whole number, not "${value}"`, 2);
  return n;
}

const modeOption = () => new Option("--mode <mode>", "2: upload raw PNG frames, Gantry encodes (default); 0: encode here with ffmpeg, upload MP4s. Default from CLOUD_OFFLOAD");

const program = new Command()
  .name("gantry-agent")
  .description("Uploads recorded robot episodes to a Gantry portal")
  .version(process.env.GANTRY_AGENT_VERSION ?? "0.1.0")
  .showHelpAfterError();

program
  .command("login")
  .description("Check an API token against the portal and save both for later commands")
  .requiredOption("--portal <url>", "the portal's address, e.g. https://gantry.lab.example")
  .requiredOption("--token <token>", "an API token with the write scope (Settings → API tokens)")
  .action(async (opts: { portal: string; token: string }) => {
    let portal: string;
    try {
      const url = new URL(opts.portal);
      if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error();
      portal = url.toString().replace(/\/+$/, "");
    } catch {
      throw new AgentError(`--portal "${opts.portal}" is not an http:// or https:// address`, 2);
    }
    const session = agentSessionSchema.parse(await portalFetch({ portal, token: opts.token }, "api/edge/session"));
    saveConfig({ portal, token: opts.token, orgName: session.orgName });
    console.log(`Logged in to ${portal} as ${session.user} in ${session.orgName} (${session.role}); saved to ${configPath()}`);
    if (!session.canUpload) console.error(`Note: a ${session.role} cannot upload episodes; ask for a token with the write scope from an operator or admin`);
  });

program
  .command("upload")
  .description("Upload the episodes of a recording folder (LeRobot recorder layout, see docs/edge.md)")
  .argument("<dir>", "recording folder holding images/, data/ (and videos/ for mode 0)")
  .requiredOption("--dataset <repo_id>", "dataset to add the episodes to, e.g. lab/pick-cube")
  .option("--episode <n...>", "only these episode numbers (default: every episode with a data file)")
  .option("--task <text>", "what the robot was doing, stored with each episode")
  .option("--fps <n>", "frames per second (default: from the data file's timestamps)")
  .option("--force", "send episodes the portal already has (their raw files are replaced; they are not encoded again)")
  .addOption(modeOption())
  .action(async (dir: string, opts: { dataset: string; episode?: string[]; task?: string; fps?: string; mode?: string; force?: boolean }) => {
    const config = loadConfig();
    const repoId = parseRepoId(opts.dataset);
    const mode = opts.mode !== undefined ? parseMode(opts.mode, "--mode") : parseMode(process.env.CLOUD_OFFLOAD, "CLOUD_OFFLOAD");
    const fps = opts.fps === undefined ? undefined : parsePositiveInt(opts.fps, "--fps");
    const root = path.resolve(dir);
    const episodes = scanRecording(root);
    if (episodes.size === 0) throw new AgentError(`No episodes in ${root}: expected images/<camera>/episode-<n>/frame-<i>.png and data/episode-<n>.jsonl (see docs/edge.md)`);
    const wanted = opts.episode?.map((n) => parsePositiveInt(n, "--episode")) ?? [...episodes.values()].filter((e) => e.data).map((e) => e.index);
    if (wanted.length === 0) throw new AgentError(`No episode in ${root} has its data file yet (data/episode-<n>.jsonl or .parquet)`);
    const progress = createProgress();
    let failed = 0;
    for (const index of wanted.sort((a, b) => a - b)) {
      const episode = episodes.get(index);
      try {
        if (!episode) throw new AgentError(`There is no episode ${index} in ${root}`);
        if (!isEpisodeFinished(episode, episodes, Date.now(), 0)) throw new AgentError(`Episode ${index} has no data file yet; is it still recording?`);
        await uploadEpisode({ config, root, episode, repoId, mode, task: opts.task, fps, progress, force: opts.force });
      } catch (error) {
        if (!(error instanceof AgentError)) throw error;
        failed++;
        console.error(`gantry-agent: ${error.message}`);
      }
    }
    if (failed) throw new AgentError(`${failed} of ${wanted.length} episode(s) were not uploaded`);
  });

program
  .command("watch")
  .description("Upload each episode as soon as its recording has finished, until stopped")
  .argument("<dir>", "recording folder to watch")
  .requiredOption("--dataset <repo_id>", "dataset to add the episodes to")
  .option("--task <text>", "what the robot is doing, stored with each episode")
  .option("--fps <n>", "frames per second (default: from the data file's timestamps)")
  .option("--quiet <seconds>", "an episode is finished when its data file exists and nothing changed for this long", "3")
  .addOption(modeOption())
  .action(async (dir: string, opts: { dataset: string; task?: string; fps?: string; quiet: string; mode?: string }) => {
    const config = loadConfig();
    const repoId = parseRepoId(opts.dataset);
    const mode = opts.mode !== undefined ? parseMode(opts.mode, "--mode") : parseMode(process.env.CLOUD_OFFLOAD, "CLOUD_OFFLOAD");
    const quiet = Number(opts.quiet);
    if (!Number.isFinite(quiet) || quiet < 0) throw new AgentError(`--quiet must be a number of seconds, not "${opts.quiet}"`, 2);
    const controller = new AbortController();
    const stop = () => controller.abort();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    await watchRecording({ config, root: dir, repoId, mode, task: opts.task, fps: opts.fps === undefined ? undefined : parsePositiveInt(opts.fps, "--fps"), quietMs: quiet * 1000, pollMs: 500, progress: createProgress(), signal: controller.signal });
  });

program
  .command("status")
  .description("Show a dataset's ingest status: uploading, encoding, completed or failed")
  .argument("<repo_id>", "the dataset, e.g. lab/pick-cube")
  .option("--json", "print the portal's answer as JSON")
  .action(async (repo: string, opts: { json?: boolean }) => {
    const config = loadConfig();
    const repoId = parseRepoId(repo);
    const status = compatStatusSchema.parse(await portalFetch(config, `edge/status/${repoId.split("/").map(encodeURIComponent).join("/")}`));
    if (opts.json) {
      console.log(JSON.stringify(status));
      return;
    }
    const { total, encoded, failed } = status.episodes;
    console.log(`${repoId}: ${status.status} ${Math.round(status.progress * 100)}% — ${encoded}/${total} episodes encoded${failed ? `, ${failed} failed` : ""}`);
    if (status.message) console.log(status.message);
    if (status.status === "FAILED") process.exitCode = 1;
  });

program
  .command("pull-model")
  .description("Download a training run's checkpoint through the portal (resumable, sha256-checked)")
  .argument("<ref>", "a dataset's repo id (its latest run with a checkpoint, e.g. lab/pick-cube) or a training run's id")
  .option("--dir <folder>", "where to put it (default: ~/DoRobot/models/<run name>/)")
  .option("--json", "print what was downloaded as JSON")
  .action(async (ref: string, opts: { dir?: string; json?: boolean }) => {
    const config = loadConfig();
    if (!/^[0-9a-f-]{36}$/i.test(ref)) parseRepoId(ref);
    const controller = new AbortController();
    process.once("SIGINT", () => controller.abort());
    const result = await pullModel({ config, ref, dir: opts.dir, progress: createProgress(), signal: controller.signal });
    if (opts.json) console.log(JSON.stringify({ dir: result.dir, model: result.manifest.model, version: result.manifest.number, run: result.manifest.run, files: result.manifest.files.length, fetchedBytes: result.fetchedBytes, skipped: result.skipped }));
    else console.log(`${result.manifest.model} v${result.manifest.number} (run ${result.manifest.run.name}, step ${result.manifest.run.step}) is in ${result.dir}${result.skipped.length ? ` — ${result.skipped.length} file(s) were already there` : ""}`);
  });

program
  .command("connect")
  .description("Stay connected to the portal and run the commands it sends (host facts, ping, the arm's motor bus, …)")
  .option("--name <name>", "the agent's name in the portal (default: this computer's host name)")
  .option("--service", "keep reconnecting for ever, whatever happens (for systemd); otherwise give up after a while or when refused")
  .option("--ports-dir <dir>", "where to look for the arm's serial ports (default /dev, or GANTRY_AGENT_PORTS_DIR)")
  .action(async (opts: { name?: string; service?: boolean; portsDir?: string }) => {
    const config = loadConfig();
    const parsed = agentNameSchema.safeParse(opts.name ?? os.hostname().split(".")[0].replace(/[^A-Za-z0-9._-]/g, "-"));
    if (!parsed.success) throw new AgentError(`--name: ${parsed.error.issues[0].message}`, 2);
    const version = process.env.GANTRY_AGENT_VERSION ?? "0.1.0";
    const controller = new AbortController();
    const stop = () => controller.abort();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);
    const portsDir = opts.portsDir ?? (process.env.GANTRY_AGENT_PORTS_DIR || undefined);
    const connection = new AgentConnection({ config, name: parsed.data, version, registry: builtInCommands(version, { portsDir: portsDir && path.resolve(portsDir) }), isService: Boolean(opts.service), retries: DEFAULT_RETRIES, log, signal: controller.signal, journalFile: path.join(agentHome(), `commands-${parsed.data}.json`) });
    await connection.run();
  });

export async function main(argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof AgentError) {
      console.error(`gantry-agent: ${error.message}`);
      process.exitCode = error.exitCode;
      return;
    }
    console.error(`gantry-agent: unexpected error: ${(error as Error).stack ?? error}`);
    process.exitCode = 1;
  }
}

