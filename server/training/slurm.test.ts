import { describe, expect, it } from "vitest";
import { runPaths } from "./run-host";
import { batchScript, describeSlurmState, meaningOfSlurmState, parseSacct, parseScontrolJob, parseSlurmState } from "./slurm";
import { judgeSlurmEnd } from "./slurm-run";

describe("Slurm job states", () => {
  it.each([
    ["PENDING", "queued", null, "queued on Slurm"],
    ["CONFIGURING", "running", null, "starting on Slurm (its nodes are being readied)"],
    ["RUNNING", "running", null, "running on Slurm"],
    ["COMPLETING", "running", null, "ending on Slurm"],
    ["COMPLETED", "ended", "completed", "completed"],
    ["FAILED", "ended", "failed", "failed (the batch script exited non-zero)"],
    ["CANCELLED", "ended", "cancelled", "cancelled"],
    ["TIMEOUT", "ended", "timeout", "stopped at its time limit"],
    ["OUT_OF_MEMORY", "ended", "out-of-memory", "killed for going over its memory limit"],
    ["NODE_FAIL", "ended", "node-fail", "ended by a failure of its node"],
    ["PREEMPTED", "ended", "preempted", "preempted by another job"],
  ])("%s is %s", (state, phase, outcome, words) => {
    expect(meaningOfSlurmState(state)).toEqual({ phase, outcome, words });
  });

  it("reads sacct's and squeue's spellings of a state", () => {
    expect(meaningOfSlurmState("CANCELLED by 1000").outcome).toBe("cancelled");
    expect(meaningOfSlurmState("CANCELLED+").outcome).toBe("cancelled");
    expect(meaningOfSlurmState("timeout").outcome).toBe("timeout");
  });

  it("shows an unknown state as Slurm names it and never takes it for an end", () => {
    for (const state of ["SUSPENDED", "REQUEUED", "BOOT_FAIL", "SOME_NEW_STATE"]) {
      const meaning = meaningOfSlurmState(state);
      expect(meaning).toMatchObject({ phase: "unknown", outcome: null });
      expect(meaning.words).toContain(state);
    }
    expect(describeSlurmState({ state: "SUSPENDED", reason: "JobHeldAdmin" })).toBe("in the state SUSPENDED, which Gantry does not interpret; it goes on following the job (JobHeldAdmin)");
  });
});

describe("reading scontrol and sacct", () => {
  const line = "JobId=17 JobName=gantry-run-x-1 UserId=robot(1000) GroupId=robot(1000) MCS_label=N/A Priority=1 Nice=0 Account=lab QOS=normal JobState=PENDING Reason=Resources Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=01:00:00";
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const getter = (lines: Record<string, string>) => (key: string) => lines[key] ?? "";

  it("reads the state, reason and exit of `scontrol -o show job`", () => {
    expect(parseScontrolJob(line)).toEqual({ state: "PENDING", reason: "Resources", exit: { code: 0, signal: 0 } });
    expect(parseScontrolJob("JobId=9 JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0")).toEqual({ state: "FAILED", reason: "NonZeroExitCode", exit: { code: 3, signal: 0 } });
    expect(parseScontrolJob("JobId=9 JobState=RUNNING Reason=None ExitCode=0:0")?.reason).toBeNull();
  });

  it("reads the allocation's line of sacct", () => {
    expect(parseSacct("17|CANCELLED by 0|0:15|None\n")).toEqual({ state: "CANCELLED by 0", reason: null, exit: { code: 0, signal: 15 } });
    expect(parseSacct("")).toBeNull();
  });

  it("goes to sacct only when scontrol has forgotten the job, and says when Slurm did not answer", () => {
    expect(parseSlurmState(getter({ scontrol_rc: "0", scontrol: b64(line) }))).toMatchObject({ source: "scontrol", state: "PENDING" });
    const forgotten = { scontrol_rc: "1", scontrol: b64("slurm_load_jobs error: Invalid job id specified") };
    expect(parseSlurmState(getter({ ...forgotten, sacct_rc: "0", sacct: b64("17|COMPLETED|0:0|None") }))).toMatchObject({ source: "sacct", state: "COMPLETED", exit: { code: 0, signal: 0 }, error: null });
    expect(parseSlurmState(getter({ ...forgotten, sacct_rc: "1", sacct: b64("Slurm accounting storage is disabled") }))).toMatchObject({ source: "none", state: null, error: null });
    expect(parseSlurmState(getter({ scontrol_rc: "124", scontrol: "" }))).toMatchObject({ source: "none", error: "scontrol did not answer within 20 s" });
    expect(parseSlurmState(getter({ scontrol_rc: "1", scontrol: b64("slurm_load_jobs error: Unable to contact slurm controller (connect failure)") })).error).toMatch(/Unable to contact/);
  });
});

describe("the batch script", () => {
  const paths = runPaths("/scratch/robot lab/gantry", "7b0c", 2);

  it("asks for the target's resources, the time-limit signal and the run's log, and records the exit code", () => {
    const script = batchScript(paths, { partition: "gpu", account: "lab", options: ["--gres=gpu:1", "--time=2-00:00:00", "--comment=two words", '--comment="already quoted"'] });
    const directives = script.split("\n").filter((l) => l.startsWith("#SBATCH"));
    expect(directives).toEqual([
      "#SBATCH --job-name=gantry-run-7b0c-2",
      '#SBATCH --output="/scratch/robot lab/gantry/runs/7b0c/attempt-2/train.log"',
      "#SBATCH --open-mode=append",
      '#SBATCH --chdir="/scratch/robot lab/gantry/runs/7b0c/attempt-2"',
      "#SBATCH --signal=B:USR1@120",
      "#SBATCH --partition=gpu",
      "#SBATCH --account=lab",
      "#SBATCH --gres=gpu:1",
      "#SBATCH --time=2-00:00:00",
      '#SBATCH --comment="two words"',
      '#SBATCH --comment="already quoted"',
    ]);
    expect(script).toContain(`trap 'date +%s > usr1_at; kill -USR1 "$child" 2>/dev/null' USR1`);
    expect(script).toContain(`echo "$code" > exit_code.tmp && mv -f exit_code.tmp exit_code\nexit "$code"`);
  });

  it("keeps a % in the log's path a plain %", () => {
    expect(batchScript(runPaths("/w/100%", "r", 1), { partition: "", account: "", options: [] })).toContain("#SBATCH --output=/w/100%%/runs/r/attempt-1/train.log");
  });
});

describe("how an ended job's run ends", () => {
  const base = { jobId: "17", exitFile: 0, usr1At: null, checkpointStep: 100, steps: 100, tail: "End of training" };
  const slurm = (state: string, exit = "0:0") => ({ source: "scontrol" as const, state, reason: null, exit: { code: Number(exit.split(":")[0]), signal: Number(exit.split(":")[1]) }, error: null });

  it("succeeds only on COMPLETED with exit 0 and the last checkpoint at the final step", () => {
    expect(judgeSlurmEnd({ ...base, slurm: slurm("COMPLETED") })).toEqual({ status: "succeeded", exitCode: 0, reason: null });
    expect(judgeSlurmEnd({ ...base, checkpointStep: 60, slurm: slurm("COMPLETED") })).toMatchObject({ status: "failed", reason: expect.stringMatching(/last checkpoint is at step 60 of 100; it is not called complete/) });
    expect(judgeSlurmEnd({ ...base, checkpointStep: null, slurm: slurm("COMPLETED") }).status).toBe("failed");
  });

  it("names the trainer's exit code, else Slurm's", () => {
    expect(judgeSlurmEnd({ ...base, exitFile: 3, slurm: slurm("FAILED", "3:0") })).toMatchObject({ status: "failed", exitCode: 3, reason: expect.stringMatching(/^Training exited with code 3; the log ends:\nEnd of training/) });
    expect(judgeSlurmEnd({ ...base, exitFile: null, slurm: slurm("FAILED", "1:0") }).exitCode).toBe(1);
    expect(judgeSlurmEnd({ ...base, exitFile: 138, usr1At: 1_700_000_000, checkpointStep: 40, slurm: slurm("FAILED", "138:0") }).reason).toMatch(/time limit \(USR1, 120 s before it\).*ended with code 138; its last checkpoint is at step 40 of 100\. Resume it/);
  });

  it.each([
    ["TIMEOUT", "failed", /reached its time limit; its last checkpoint is at step 40 of 100\. Resume it to go on from there, or give the target a longer --time/],
    ["OUT_OF_MEMORY", "failed", /went over its memory limit.*--mem/],
    ["NODE_FAIL", "failed", /its node failed/],
    ["PREEMPTED", "failed", /preempted by another job/],
    ["CANCELLED by 1000", "cancelled", /cancelled outside Gantry/],
  ])("%s ends the run %s, saying so", (state, status, reason) => {
    expect(judgeSlurmEnd({ ...base, exitFile: null, checkpointStep: 40, slurm: slurm(state) })).toMatchObject({ status, reason: expect.stringMatching(reason) });
  });

  it("does not call a job Slurm has forgotten finished, whatever the folder says", () => {
    const judged = judgeSlurmEnd({ ...base, slurm: { source: "none", state: null, reason: null, exit: null, error: null } });
    expect(judged).toMatchObject({ status: "lost", reason: expect.stringMatching(/Slurm no longer knows job 17.*cannot be confirmed; the batch script recorded exit code 0/) });
  });
});
