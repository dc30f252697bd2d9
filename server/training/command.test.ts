import { describe, expect, it } from "vitest";
import { parseBigNumber, parseMetricsLine, renderCommand, splitArgs } from "./command";
import { parseCheckpointSteps, parsePoll } from "./run-host";
import { readMetrics } from "./run-log";
import { DEFAULT_TEMPLATE, commandTemplateSchema } from "./training.schemas";

const values = { repo_id: "lab/pick", dataset: "/data/lab/pick", policy: "act", output: "/runs/1/output", name: "pick-act", steps: "1000", save_freq: "500", log_freq: "100" };

describe("command templates", () => {
  it("quotes every value, so hostile names run nothing", () => {
    const hostile = { ...values, repo_id: "lab/x'; rm -rf / #", name: "$(reboot)", dataset: "/d/`id`" };
    const line = renderCommand(DEFAULT_TEMPLATE, hostile, `--policy.n_obs_steps=2 "--wandb.notes=it's; fine" ';touch /tmp/x'`);
    expect(line).toContain(`--dataset.repo_id='lab/x'\\''; rm -rf / #'`);
    expect(line).toContain(`--job_name='$(reboot)'`);
    expect(line).toContain(`--dataset.root='/d/\`id\`'`);
    expect(line.endsWith(`'--policy.n_obs_steps=2' '--wandb.notes=it'\\''s; fine' ';touch /tmp/x'`)).toBe(true);
  });

  it("splits arguments as a shell does for words and refuses unclosed quotes", () => {
    expect(splitArgs(`a "b c" 'd e' f\\ g ""`)).toEqual(["a", "b c", "d e", "f g", ""]);
    expect(() => splitArgs(`"open`)).toThrow(/unclosed double quote/);
  });

  it("accepts the default template and refuses unknown placeholders or no output", () => {
    expect(commandTemplateSchema.safeParse(DEFAULT_TEMPLATE).success).toBe(true);
    expect(commandTemplateSchema.safeParse("train {output} {secret}").error?.issues[0].message).toMatch(/\{secret\}/);
    expect(commandTemplateSchema.safeParse("train --steps={steps}").error?.issues[0].message).toMatch(/\{output\}/);
    expect(commandTemplateSchema.safeParse("train {output}\nreboot").success).toBe(false);
  });
});

describe("LeRobot's log lines", () => {
  it("reads the periodic line as key:value tokens, big numbers included", () => {
    const m = parseMetricsLine("INFO 2025-03-25 14:08:06 ts/train.py:232 step:2K smpl:16K ep:40 epch:0.53 loss:0.412 grdn:1.234 lr:1.0e-05 updt_s:0.123 data_s:0.004");
    expect(m).toEqual({ stepText: "2K", values: { step: 2000, smpl: 16000, ep: 40, epch: 0.53, loss: 0.412, grdn: 1.234, lr: 1e-5, updt_s: 0.123, data_s: 0.004 } });
    expect(parseMetricsLine("INFO 2025 train.py:1 step:200 smp/s:31.5 mem_gb:4.2 l1_loss:0.1")?.values).toEqual({ step: 200, "smp/s": 31.5, mem_gb: 4.2, l1_loss: 0.1 });
    expect(parseMetricsLine("INFO Creating dataset")).toBeNull();
    expect(parseBigNumber("1.5M")).toBe(1_500_000);
    expect(parseBigNumber("abc")).toBeNull();
  });

  it("ignores steps no Int column holds, in the log and in checkpoint names, and goes on with the next line", () => {
    const text = "step:10 loss:0.5\nstep:99999999999 loss:0.4\nstep:3B loss:0.4\nstep:20 loss:0.3\n";
    const { metrics, step } = readMetrics(text, null, 10);
    expect(metrics.map((m) => m.step)).toEqual([10, 20]);
    expect(step).toBe(20);
    expect(parseCheckpointSteps("000020 000040 3000000000 999999999999")).toEqual([20, 40]);
    expect(parsePoll('ckpt:{"step":3000000000}\nckpts:3000000000\n')).toMatchObject({ checkpointStep: null, checkpointSteps: [] });
    expect(parsePoll('ckpt:{"step":40}\nckpts:000020 000040\n')).toMatchObject({ checkpointStep: 40, checkpointSteps: [20, 40] });
  });
});
