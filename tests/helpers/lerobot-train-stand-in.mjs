#!/usr/bin/env node
// A stand-in for LeRobot's `lerobot-train` on a simulated GPU host (no GPU, no torch here). It
// takes the real flags, prints LeRobot's real log lines at a set pace, writes the real
// checkpoint layout (checkpoints/<step>/pretrained_model with safetensors files,
// training_state/training_step.json, the `last` link swapped as LeRobot swaps it) and ends as
// the control files beside its bin/ folder say:
//   control/train-pace-ms     milliseconds per logged step (default 20)
//   control/train-stop-at     stop at this step (checkpointing there) and exit
//   control/train-exit        exit code at the end (default 0)
//   control/train-hang        after the last step, never exit
//   control/train-ignore-term ignore SIGTERM (only KILL stops it)
//   control/train-spam-kb     print this many KiB of filler lines per logged step
//   control/train-hold        holds at this step (after logging it) for as long as the file exists
//   control/train-stamp       end every log line with t:<epoch ms> (when it was written)
import fs from "node:fs";
import path from "node:path";

const here = path.dirname(fs.realpathSync(process.argv[1]));
const control = (name) => {
  try {
    return fs.readFileSync(path.join(here, "..", "control", name), "utf8").trim();
  } catch {
    return null;
  }
};
const args = Object.fromEntries(process.argv.slice(2).filter((a) => a.startsWith("--")).map((a) => {
  const i = a.indexOf("=");
  return i < 0 ? [a.slice(2), "true"] : [a.slice(2, i), a.slice(i + 1)];
}));
if (args.version) {
  console.log("0.4.1");
  process.exit(0);
}
const stamp = control("train-stamp") !== null;
const log = (msg) => {
  const now = new Date().toISOString().replace("T", " ").slice(0, 19);
  process.stdout.write(`INFO ${now} ot_train.py:${200 + (msg.length % 50)} ${msg}${stamp ? ` t:${Date.now()}` : ""}\n`);
};
const die = (msg) => {
  process.stderr.write(`Traceback (most recent call last):\n  File "lerobot/scripts/lerobot_train.py", line 1, in <module>\n${msg}\n`);
  process.exit(1);
};

const output = args.output_dir;
const steps = Number(args.steps ?? 100000);
const saveFreq = Number(args.save_freq ?? 20000);
const logFreq = Number(args.log_freq ?? 200);
if (!output) die("ValueError: --output_dir is required");
if (!args["dataset.root"] || !fs.existsSync(path.join(args["dataset.root"], "meta", "info.json"))) die(`FileNotFoundError: no LeRobot dataset at ${args["dataset.root"]}`);
const resume = args.resume === "true";
let start = 0;
if (resume) {
  const cfg = args.config_path;
  if (!cfg || !fs.existsSync(cfg)) die(`FileNotFoundError: ${cfg}`);
  start = JSON.parse(fs.readFileSync(path.join(path.dirname(path.dirname(cfg)), "training_state", "training_step.json"), "utf8")).step;
  log(`Resuming from step ${start}`);
} else if (fs.existsSync(output)) {
  die(`FileExistsError: Output directory ${output} already exists and resume is False. Please change your output directory so that ${output} is not overwritten.`);
}
if (control("train-ignore-term")) process.on("SIGTERM", () => log("Received SIGTERM; ignoring it"));
else process.on("SIGTERM", () => {
  log("Received SIGTERM, stopping");
  process.exit(143);
});

const digits = Math.max(6, String(steps).length);
const big = (n) => {
  for (const s of ["", "K", "M", "B", "T", "Q"]) {
    if (Math.abs(n) < 1000) return `${Math.round(n)}${s}`;
    n /= 1000;
  }
  return String(n);
};
function safetensors(name, values) {
  const data = Buffer.from(new Float32Array(values).buffer);
  let header = JSON.stringify({ __metadata__: { format: "pt" }, [name]: { dtype: "F32", shape: [values.length], data_offsets: [0, data.length] } });
  header += " ".repeat((8 - (header.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([len, Buffer.from(header), data]);
}
function checkpoint(step) {
  const dir = path.join(output, "checkpoints", String(step).padStart(digits, "0"));
  const model = path.join(dir, "pretrained_model");
  const state = path.join(dir, "training_state");
  fs.mkdirSync(model, { recursive: true });
  fs.mkdirSync(state, { recursive: true });
  fs.writeFileSync(path.join(model, "config.json"), JSON.stringify({ type: args["policy.type"] ?? "act", device: args["policy.device"] ?? "cuda" }, null, 2));
  fs.writeFileSync(path.join(model, "model.safetensors"), safetensors("model.weight", [step, 1, 2, 3]));
  fs.writeFileSync(path.join(model, "train_config.json"), JSON.stringify({ steps, save_freq: saveFreq, log_freq: logFreq, output_dir: output, dataset: { repo_id: args["dataset.repo_id"], root: args["dataset.root"] }, policy: { type: args["policy.type"] } }, null, 2));
  fs.writeFileSync(path.join(model, "policy_preprocessor.json"), JSON.stringify({ name: "policy_preprocessor", steps: [] }));
  fs.writeFileSync(path.join(state, "optimizer_state.safetensors"), safetensors("state", [step]));
  fs.writeFileSync(path.join(state, "training_step.json"), JSON.stringify({ step }));
  // As LeRobot does it: remove the old link, then point `last` at the new step.
  const last = path.join(output, "checkpoints", "last");
  if (fs.existsSync(last) || fs.lstatSync(last, { throwIfNoEntry: false })) fs.unlinkSync(last);
  fs.symlinkSync(path.basename(dir), last);
  log(`Checkpoint policy after step ${step}`);
}

const pace = Number(control("train-pace-ms") ?? 20);
const stopAt = control("train-stop-at") ? Number(control("train-stop-at")) : null;
const spamKb = Number(control("train-spam-kb") ?? 0);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
fs.mkdirSync(output, { recursive: true });
log(`Output dir: ${output}`);
log(`cfg.steps=${steps} (${big(steps)})`);
process.stderr.write("Loading dataset...\r");
process.stderr.write("Loading dataset: 100%\n");
const end = stopAt ?? steps;
for (let step = start + 1; step <= end; step++) {
  if (step % logFreq === 0) {
    const loss = (2 / Math.sqrt(step)).toFixed(3);
    log(`step:${big(step)} smpl:${big(step * 8)} ep:${big(step / 50)} epch:${(step / 500).toFixed(2)} loss:${loss} grdn:${(1 + 1 / step).toFixed(3)} lr:1.0e-05 updt_s:0.${String(100 + (step % 50)).padStart(3, "0")} data_s:0.004`);
    if (spamKb) process.stdout.write(("x".repeat(1023) + "\n").repeat(spamKb));
    await sleep(pace);
    while (control("train-hold") !== null && Number(control("train-hold")) <= step) await sleep(50);
  }
  if (step % saveFreq === 0 || step === end) checkpoint(step);
}
log("End of training");
if (control("train-hang")) for (;;) await sleep(1000);
process.exit(Number(control("train-exit") ?? 0));
