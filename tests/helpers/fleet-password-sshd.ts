import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Server } from "ssh2";

// OpenSSH checks passwords against the machine's own accounts, which tests must not change;
// so password sign-in is tested against ssh2's SSH server: one user and password, and exec
// answering `echo` commands. Everything else about devices runs against OpenSSH (sshd-rig.ts).

export interface PasswordSshd {
  port: number;
  username: string;
  password: string;
  /** Every password a client offered, right or wrong. */
  passwordsOffered: string[];
  close(): Promise<void>;
}

export async function startPasswordSshd({ username = "robot", password = "correct horse" } = {}): Promise<PasswordSshd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-password-sshd-"));
  const keyFile = path.join(dir, "host_ed25519");
  const passwordsOffered: string[] = [];
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyFile], { stdio: "ignore" });
  const server = new Server({ hostKeys: [fs.readFileSync(keyFile)] }, (client) => {
    client.on("authentication", (ctx) => {
      if (ctx.method === "password") passwordsOffered.push(ctx.password);
      if (ctx.method === "password" && ctx.username === username && ctx.password === password) ctx.accept();
      else ctx.reject(["password"]);
    });
    client.on("ready", () => {
      client.on("session", (accept) => {
        accept().on("exec", (acceptExec, _reject, info) => {
          const stream = acceptExec();
          const echoed = /^echo (.*)$/.exec(info.command);
          stream.write(echoed ? `${echoed[1]}\n` : "");
          stream.exit(echoed ? 0 : 127);
          stream.end();
        });
      });
    });
    client.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    username,
    password,
    passwordsOffered,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        fs.rmSync(dir, { recursive: true, force: true });
      }),
  };
}
