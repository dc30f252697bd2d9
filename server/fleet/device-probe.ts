import path from "node:path";
import type { Tx } from "../db";
import { sshTargetOfSealed } from "../ssh/sealed-target";
import { quoteShell } from "../ssh/shell-quote";
import type { SshSession, SshTarget } from "../ssh/ssh-client";
import { POLICY_SERVICE, type DeviceFacts } from "./fleet.schemas";

// What a device is and runs, read in one command: os, architecture, Jetson release or board
// model, cpu, memory, load, free disk in the model directory, whether the policy service
// exists and is active, and where current_model.onnx points. Only the model directory comes
// from a person, and it is quoted.

export interface DeviceRow {
  id: string;
  orgId: string;
  name: string;
  host: string;
  port: number;
  username: string;
  authKind: "key" | "password";
  credential: string;
  pinnedHostKey: string | null;
  modelDir: string;
}

/** How to reach a device (its sealed credential opened in server/ssh/sealed-target.ts). */
export function sshTargetOf(device: DeviceRow, opts: { pinned?: string | null; timeoutMs?: number } = {}): SshTarget {
  return sshTargetOfSealed(device, { pinned: opts.pinned, timeoutMs: opts.timeoutMs ?? 10_000, purpose: "device" });
}

export const CURRENT_LINK = "current_model.onnx";

export function modelPaths(modelDir: string, sha256?: string) {
  return {
    dir: modelDir,
    models: path.posix.join(modelDir, "models"),
    current: path.posix.join(modelDir, CURRENT_LINK),
    file: sha256 ? path.posix.join(modelDir, "models", `${sha256}.onnx`) : "",
    /** What the link holds: relative, so the directory can move. */
    linkValue: sha256 ? `models/${sha256}.onnx` : "",
  };
}

/** The sha256 a link target names when it is one of ours (models/<sha256>.onnx). */
export function sha256OfTarget(target: string | null | undefined): string | null {
  const m = target ? /(?:^|\/)([0-9a-f]{64})\.onnx$/.exec(target) : null;
  return m ? m[1] : null;
}

function probeScript(modelDir: string, { isHashing, healthCommand }: { isHashing: boolean; healthCommand?: string }): string {
  const m = quoteShell(modelDir);
  const c = quoteShell(path.posix.join(modelDir, CURRENT_LINK));
  return [
    `echo "os=$( (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") || uname -s)"`,
    `echo "kernel=$(uname -r)"`,
    `echo "arch=$(uname -m)"`,
    `echo "tegra=$(head -n1 /etc/nv_tegra_release 2>/dev/null)"`,
    `echo "board=$(tr -d '\\000' < /proc/device-tree/model 2>/dev/null)"`,
    `echo "cpu=$(grep -m1 -E '^(model name|Model|Hardware)' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')"`,
    `echo "cpus=$(nproc 2>/dev/null)"`,
    `echo "memKb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)"`,
    `echo "memAvailKb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo 2>/dev/null)"`,
    `echo "load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null)"`,
    `d=${m}; while [ ! -d "$d" ] && [ "$d" != / ]; do d=$(dirname "$d"); done`,
    `echo "diskFreeKb=$(df -Pk "$d" 2>/dev/null | awk 'NR==2 {print $4}')"`,
    `systemctl status ${POLICY_SERVICE} >/dev/null 2>&1; echo "serviceStatus=$?"`,
    `echo "serviceState=$(systemctl is-active ${POLICY_SERVICE} 2>/dev/null)"`,
    `t=$(readlink ${c} 2>/dev/null); echo "target=$t"`,
    isHashing ? `[ -n "$t" ] && [ -e ${c} ] && echo "sha=$(sha256sum < ${c} | cut -d' ' -f1)"` : "true",
    // The device's own health command (an admin's), bounded in time; its exit code decides.
    healthCommand ? `out=$(timeout 15 sh -c ${quoteShell(healthCommand)} 2>&1 < /dev/null); echo "health=$?"; echo "healthOut=$(printf %s "$out" | tail -c 300 | tr '\n' ' ')"` : "true",
  ].join("\n");
}

export interface Probe {
  facts: DeviceFacts;
  currentSha256: string | null;
  /** The health command's exit code and output tail, when one was run. */
  health: { code: number | null; output: string } | null;
}

/** Runs the probe; with isHashing the current model is hashed on the device, else its name is trusted. */
export async function probeDevice(session: SshSession, modelDir: string, { isHashing = false, timeoutMs = 30_000, healthCommand }: { isHashing?: boolean; timeoutMs?: number; healthCommand?: string } = {}): Promise<Probe> {
  const result = await session.exec(probeScript(modelDir, { isHashing, healthCommand }), { timeoutMs });
  const v = Object.fromEntries(
    result.stdout
      .split("\n")
      .map((line) => /^([a-zA-Z]+)=(.*)$/.exec(line))
      .filter((m): m is RegExpExecArray => Boolean(m))
      .map((m) => [m[1], m[2].trim()]),
  ) as Record<string, string>;
  const num = (s: string | undefined) => (s && Number.isFinite(Number(s)) ? Number(s) : null);
  const kb = (s: string | undefined) => (num(s) === null ? null : num(s)! * 1024);
  const target = v.target || null;
  const currentSha256 = (v.sha && /^[0-9a-f]{64}$/.test(v.sha) ? v.sha : null) ?? (isHashing ? null : sha256OfTarget(target));
  const serviceStatus = num(v.serviceStatus);
  return {
    currentSha256,
    health: healthCommand ? { code: num(v.health), output: v.healthOut ?? "" } : null,
    facts: {
      os: v.os || null,
      kernel: v.kernel || null,
      arch: v.arch || null,
      jetsonRelease: v.tegra || null,
      board: v.board || null,
      cpu: v.cpu || null,
      cpus: num(v.cpus),
      memoryBytes: kb(v.memKb),
      memoryAvailableBytes: kb(v.memAvailKb),
      load1: num(v.load),
      diskFreeBytes: kb(v.diskFreeKb),
      // systemctl status: 0 active, 1–3 not running, 4 no such unit; anything else (127: no
      // systemctl at all) says nothing about the service, so nothing is claimed.
      isServicePresent: serviceStatus !== null && serviceStatus >= 0 && serviceStatus <= 3,
      serviceState: serviceStatus !== null && serviceStatus >= 0 && serviceStatus <= 4 ? v.serviceState || null : null,
      currentTarget: target,
      currentSha256,
      checkedAt: new Date().toISOString(),
    },
  };
}

/** The registry version a digest belongs to, in this organisation. */
export async function versionOfSha(tx: Tx, orgId: string, sha256: string | null): Promise<{ id: string; modelName: string; number: number } | null> {
  if (!sha256) return null;
  const v = await tx.modelVersion.findFirst({ where: { orgId, sha256 }, orderBy: { createdAt: "asc" }, select: { id: true, number: true, model: { select: { name: true } } } });
  return v ? { id: v.id, modelName: v.model.name, number: v.number } : null;
}
