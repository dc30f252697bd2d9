import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSshdRig, type SshdRig } from "../../tests/helpers/sshd-rig";
import { shellCommand } from "./shell-quote";
import { connectSsh, HostKeyChangedError, type SshTarget } from "./ssh-client";
import { SshPool } from "./ssh-pool";
import { uploadResumable } from "./sftp-upload";

let rig: SshdRig;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-ssh-test-"));

beforeAll(async () => {
  rig = await startSshdRig(2);
});
afterAll(async () => {
  await rig?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const target = (i: number, pinned: string | null = null): SshTarget => {
  const d = rig.devices[i];
  return { name: d.name, host: d.host, port: d.port, username: d.user, privateKey: rig.privateKey, pinnedFingerprint: pinned, timeoutMs: 5000 };
};

describe("ssh connections", () => {
  it("reports the host key fingerprint on first contact, as ssh-keygen prints it, and accepts it pinned", async () => {
    const first = await connectSsh(target(0));
    expect(first.fingerprint).toBe(rig.devices[0].fingerprint());
    first.close();
    const again = await connectSsh(target(0, first.fingerprint));
    expect((await again.exec("echo hi")).stdout).toBe("hi\n");
    again.close();
  });

  it("refuses a changed host key with a message that says so", async () => {
    const d = rig.devices[1];
    const pinned = d.fingerprint();
    await d.changeHostKey();
    const error = await connectSsh(target(1, pinned)).catch((e) => e);
    expect(error).toBeInstanceOf(HostKeyChangedError);
    expect(error.message).toContain(`pinned ${pinned}`);
    expect(error.message).toContain(`now offers ${d.fingerprint()}`);
    expect(error.message).toMatch(/re-pin/);
  });

  it("says when a device is down or refuses the key", async () => {
    const d = rig.devices[1];
    await d.down();
    await expect(connectSsh(target(1))).rejects.toThrow(/Could not open an SSH session with .*: the connection failed or timed out, or what answered was not an SSH server/);
    await d.up();
    const other = path.join(tmp, "other_key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other]);
    const privateKey = fs.readFileSync(other, "utf8");
    await expect(connectSsh({ ...target(1), privateKey })).rejects.toThrow(/refused the SSH key for user/);
  });

  it("streams output, reports exit codes and stops a command at its timeout", async () => {
    const s = await connectSsh(target(0));
    const seen: string[] = [];
    const r = await s.exec("echo one; echo two >&2; exit 7", { onOutput: (t, stream) => seen.push(`${stream}:${t.trim()}`) });
    expect(r).toMatchObject({ code: 7, stdout: "one\n", stderr: "two\n" });
    expect(seen).toEqual(expect.arrayContaining(["stdout:one", "stderr:two"]));
    await expect(s.exec("sleep 5", { timeoutMs: 300 })).rejects.toThrow(/did not finish within/);
    // The connection still serves other commands after a stopped one.
    expect((await s.exec(shellCommand("printf", "%s", "it's $(id)"))).stdout).toBe("it's $(id)");
    s.close();
  });

  it("reuses one connection per key and replaces a dropped one", async () => {
    const pool = new SshPool();
    const a = await pool.get("dev", target(0));
    const b = await pool.get("dev", target(0));
    expect(a).toBe(b);
    a.close();
    await new Promise((r) => setTimeout(r, 50));
    const c = await pool.get("dev", target(0));
    expect(c).not.toBe(a);
    expect((await c.exec("echo ok")).stdout).toBe("ok\n");
    pool.close();
  });
});

describe("sftp uploads", () => {
  const file = path.join(tmp, "model.bin");
  let sha = "";
  beforeAll(() => {
    const data = crypto.randomBytes(6 * 1024 * 1024 + 123);
    fs.writeFileSync(file, data);
    sha = crypto.createHash("sha256").update(data).digest("hex");
  });

  it("uploads to a part file and renames it into place", async () => {
    const d = rig.devices[0];
    const remote = path.join(d.modelDir, "plain.onnx");
    const session = await connectSsh(target(0));
    const result = await uploadResumable({ connect: async () => session, localPath: file, remotePath: remote });
    expect(result).toMatchObject({ bytes: fs.statSync(file).size, attempts: 1, resumedFrom: 0 });
    expect(fs.existsSync(`${remote}.part`)).toBe(false);
    expect((await session.exec(shellCommand("sha256sum", "--", remote))).stdout.split(" ")[0]).toBe(sha);
    session.close();
  });

  it("goes on from the part after the connection drops mid-upload", async () => {
    const d = rig.devices[0];
    const remote = path.join(d.modelDir, "resumed.onnx");
    let connects = 0;
    d.cutAfterBytes(2 * 1024 * 1024);
    const resumes: number[] = [];
    const result = await uploadResumable({
      connect: () => {
        connects++;
        return connectSsh(target(0));
      },
      localPath: file,
      remotePath: remote,
      onResume: (offset) => resumes.push(offset),
    });
    expect(connects).toBe(2);
    expect(result.attempts).toBe(2);
    expect(result.resumedFrom).toBeGreaterThan(0);
    expect(resumes).toEqual([result.resumedFrom]);
    const sent = crypto.createHash("sha256").update(fs.readFileSync(remote)).digest("hex");
    expect(sent).toBe(sha);
    expect(fs.existsSync(`${remote}.part`)).toBe(false);
  });
});

describe("password sign-in", () => {
  it("signs in with a password and says when it is refused", async () => {
    const { startPasswordSshd } = await import("../../tests/helpers/fleet-password-sshd");
    const sshd = await startPasswordSshd();
    try {
      const base = { name: "pw-device", host: "127.0.0.1", port: sshd.port, username: sshd.username, pinnedFingerprint: null, timeoutMs: 5000 };
      const session = await connectSsh({ ...base, password: sshd.password });
      expect((await session.exec("echo signed-in")).stdout).toBe("signed-in\n");
      session.close();
      await expect(connectSsh({ ...base, password: "wrong" })).rejects.toThrow(/refused the password for user robot/);
    } finally {
      await sshd.close();
    }
  });
});
