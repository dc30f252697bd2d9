import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createShapedLinks, removeNamespace, type ShapedLink } from "./netns-link";

// Simulated devices: one real OpenSSH sshd per device on 127.0.0.1, each with its own host
// key, authorized_keys, model directory and a bin/ first on the PATH of every session
// (SetEnv in sshd_config) holding stand-ins for what a board has and this machine does not:
//   systemctl  records restarts in <dir>/systemctl.log and answers is-active / status as the
//              files in <dir>/control/ say (see below);
//   sudo       runs its arguments (sessions already run as root here);
//   df         the real df, unless <dir>/control/disk-free-kb names the free space to report.
// Each device is reached through a TCP relay the test can cut (a dropped connection mid-
// upload) or close (a device that is down); sshd itself can be restarted with a new host key.
//
// With `netns: { rateMbit }` (benchmarks; needs root and iproute2) each sshd runs instead in a
// network namespace of its own behind a veth link shaped to that rate both ways
// (tests/helpers/netns-link.ts), reached directly at its private address on port 22: no relay,
// so cutAfterBytes, bytesIn and stopListening are not available. The namespaces go with stop(),
// and with the process on Ctrl-C or exit.
//
// Control files in <dir>/control/:
//   restart-exit     exit code of `systemctl restart` (default 0)
//   bad-models       sha256 per line: with current_model.onnx pointing at one of them, the
//                    service is not active after a restart (a policy that does not come up)
//   no-service       the gantry-policy unit does not exist
//   disk-free-kb     what df reports as available

const SSHD = "/usr/sbin/sshd";
/** How long a cut connection's last bytes are given to reach the device before it drops. */
const CUT_SETTLE_MS = 300;

export interface RigDevice {
  name: string;
  /** 127.0.0.1, or the device's private address with `netns`. */
  host: string;
  /** The relay's port (sshd's own with `netns`): what Gantry connects to. */
  port: number;
  /** sshd's own port, behind the relay. */
  sshdPort: number;
  user: string;
  dir: string;
  modelDir: string;
  /** SHA256:… of the current host key, as ssh-keygen -l prints it. */
  fingerprint(): string;
  /** Writes a control file (see above); null removes it. */
  control(name: "restart-exit" | "bad-models" | "no-service" | "disk-free-kb", value: string | null): void;
  /** Lines of `systemctl` calls seen, e.g. "restart gantry-policy". */
  systemctlCalls(): string[];
  /** Closes every relayed connection once this many more bytes went from client to device. */
  cutAfterBytes(bytes: number): void;
  /** Bytes relayed client → device since the rig started. */
  bytesIn(): number;
  /** The relay stops answering (connection refused) and sshd stops. */
  down(): Promise<void>;
  /** New connections are refused, but connections already open stay (as when sshd is stopped: its sessions live on). */
  stopListening(): Promise<void>;
  up(): Promise<void>;
  /** Restarts sshd with a freshly generated host key. */
  changeHostKey(): Promise<void>;
  /** Where current_model.onnx points (relative as written), or null. */
  currentTarget(): string | null;
}

export interface SshdRig {
  devices: RigDevice[];
  /** OpenSSH private key (ed25519) that every device accepts. */
  privateKey: string;
  privateKeyPath: string;
  root: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function keygen(file: string): void {
  fs.rmSync(file, { force: true });
  fs.rmSync(`${file}.pub`, { force: true });
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "gantry-rig", "-f", file], { stdio: "ignore" });
}

function fingerprintOf(pubFile: string): string {
  return execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", pubFile], { encoding: "utf8" }).split(" ")[1];
}

const systemctlScript = (dir: string, modelDir: string) => `#!/bin/sh
# Stand-in systemctl of a simulated device.
C='${dir}/control'
echo "$*" >> '${dir}/systemctl.log'
verb="$1"; [ "$verb" = "--quiet" ] && verb="$2"
for a in "$@"; do [ "$a" = "--quiet" ] && quiet=1; done
say() { [ -z "$quiet" ] && echo "$1"; return 0; }
if [ -f "$C/no-service" ]; then echo "Unit gantry-policy.service could not be found." >&2; [ "$verb" = "is-active" ] && exit 3; exit 4; fi
running=$(cat '${dir}/running-model' 2>/dev/null)
case "$verb" in
  restart)
    code=$(cat "$C/restart-exit" 2>/dev/null || echo 0)
    [ "$code" != 0 ] && { echo "Job for gantry-policy.service failed." >&2; exit "$code"; }
    readlink '${modelDir}/current_model.onnx' > '${dir}/running-model' || true
    exit 0 ;;
  is-active)
    sha=$(basename "$running" .onnx)
    if [ -z "$running" ] || { [ -f "$C/bad-models" ] && grep -qx "$sha" "$C/bad-models"; }; then say failed; exit 3; fi
    say active; exit 0 ;;
  status)
    echo "gantry-policy.service - Gantry policy (stand-in)"; exit 0 ;;
  *) exit 0 ;;
esac
`;

const dfScript = (dir: string) => `#!/bin/sh
# Stand-in df of a simulated device: the real one unless control/disk-free-kb says otherwise.
if [ -f '${dir}/control/disk-free-kb' ]; then
  echo "Filesystem 1024-blocks Used Available Capacity Mounted on"
  echo "rig 100000000 1 $(cat '${dir}/control/disk-free-kb') 99% /"
  exit 0
fi
exec /usr/bin/df "$@"
`;

const sudoScript = `#!/bin/sh
# Stand-in sudo: sessions on the rig already run as root.
exec "$@"
`;

export interface SshdRigOptions {
  names?: string[];
  /** Each device in its own network namespace behind a link shaped to this rate (both ways). */
  netns?: { rateMbit: number };
}

export async function startSshdRig(count: number, { names, netns }: SshdRigOptions = {}): Promise<SshdRig> {
  // sshd refuses to start without its privilege separation directory (the package makes it at boot).
  fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-sshd-rig-"));
  const privateKeyPath = path.join(root, "client_ed25519");
  keygen(privateKeyPath);
  const publicKey = fs.readFileSync(`${privateKeyPath}.pub`, "utf8");
  const user = os.userInfo().username;
  const devices: (RigDevice & { stopAll(): Promise<void> })[] = [];
  const links = netns ? createShapedLinks(count, netns) : [];
  const removeLinks = () => {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    process.removeListener("exit", removeLinks);
    for (const link of links.splice(0)) removeNamespace(link.namespace);
  };
  // Ctrl-C or a kill while the rig runs: the namespaces go, then the signal does what it would have.
  function onSignal(signal: NodeJS.Signals) {
    removeLinks();
    process.kill(process.pid, signal);
  }
  if (links.length) {
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    process.once("exit", removeLinks);
  }
  try {
    for (let i = 0; i < count; i++) {
      devices.push(await startDevice(root, names?.[i] ?? `rig-${i + 1}-${crypto.randomBytes(2).toString("hex")}`, user, publicKey, links[i]));
    }
  } catch (error) {
    await Promise.all(devices.map((d) => d.stopAll()));
    removeLinks();
    fs.rmSync(root, { recursive: true, force: true });
    throw error;
  }
  return {
    devices,
    privateKey: fs.readFileSync(privateKeyPath, "utf8"),
    privateKeyPath,
    root,
    async stop() {
      try {
        await Promise.all(devices.map((d) => d.stopAll()));
      } finally {
        removeLinks();
        fs.rmSync(root, { recursive: true, force: true });
      }
    },
  };
}

async function startDevice(root: string, name: string, user: string, publicKey: string, link?: ShapedLink): Promise<RigDevice & { stopAll(): Promise<void> }> {
  const dir = path.join(root, name);
  const modelDir = path.join(dir, "gantry");
  const bin = path.join(dir, "bin");
  for (const d of [dir, modelDir, bin, path.join(dir, "control")]) fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(dir, "authorized_keys"), publicKey, { mode: 0o600 });
  fs.writeFileSync(path.join(bin, "systemctl"), systemctlScript(dir, modelDir), { mode: 0o755 });
  fs.writeFileSync(path.join(bin, "df"), dfScript(dir), { mode: 0o755 });
  fs.writeFileSync(path.join(bin, "sudo"), sudoScript, { mode: 0o755 });
  const hostKey = path.join(dir, "host_ed25519");
  keygen(hostKey);
  const sshdHost = link?.deviceAddress ?? "127.0.0.1";
  const sshdPort = link ? 22 : await freePort();
  const config = path.join(dir, "sshd_config");
  fs.writeFileSync(
    config,
    [
      `Port ${sshdPort}`,
      `ListenAddress ${sshdHost}`,
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
      "PermitRootLogin yes",
      "StrictModes no",
      "UsePAM no",
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "Subsystem sftp /usr/lib/openssh/sftp-server",
      // Behind a link it is a board of its own, with a home of its own: not this machine's
      // dotfiles, which bash reads for every command sshd runs.
      `SetEnv PATH=${bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin${link ? ` HOME=${dir}` : ""}`,
      "MaxStartups 200",
      "MaxSessions 100",
      "LogLevel ERROR",
      "",
    ].join("\n"),
  );

  let sshd: ChildProcess | null = null;
  const startSshd = async () => {
    const [command, ...args] = [...(link?.inNamespace ?? []), SSHD, "-D", "-e", "-f", config];
    sshd = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    sshd.stderr!.on("data", (c) => (stderr = (stderr + c).slice(-4000)));
    const exited = new Promise<never>((_, reject) => sshd!.once("exit", (code) => reject(new Error(`sshd for ${name} exited (${code}): ${stderr}`))));
    exited.catch(() => {});
    // Ready when it accepts a connection and sends its banner.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ok = await Promise.race([banner(sshdPort, sshdHost), exited]).catch((e) => (sshd?.exitCode !== null ? Promise.reject(e) : false));
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`sshd for ${name} did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stopSshd = async () => {
    const p = sshd;
    sshd = null;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    await gone;
  };
  await startSshd();

  const common = {
    name,
    sshdPort,
    user,
    dir,
    modelDir,
    fingerprint: () => fingerprintOf(`${hostKey}.pub`),
    control(file: string, value: string | null) {
      const p = path.join(dir, "control", file);
      if (value === null) fs.rmSync(p, { force: true });
      else fs.writeFileSync(p, value.endsWith("\n") ? value : `${value}\n`);
    },
    systemctlCalls: () => (fs.existsSync(path.join(dir, "systemctl.log")) ? fs.readFileSync(path.join(dir, "systemctl.log"), "utf8").split("\n").filter(Boolean) : []),
    async changeHostKey() {
      await stopSshd();
      keygen(hostKey);
      await startSshd();
    },
    currentTarget() {
      try {
        return fs.readlinkSync(path.join(modelDir, "current_model.onnx"));
      } catch {
        return null;
      }
    },
  };

  // Behind a shaped link: reached at sshd itself.
  function directDevice(): RigDevice & { stopAll(): Promise<void> } {
    const noRelay = (what: string) => () => {
      throw new Error(`${what} needs the relay, which a rig with netns does not have`);
    };
    return {
      ...common,
      host: sshdHost,
      port: sshdPort,
      cutAfterBytes: noRelay("cutAfterBytes"),
      bytesIn: noRelay("bytesIn"),
      stopListening: noRelay("stopListening"),
      down: stopSshd,
      async up() {
        if (!sshd) await startSshd();
      },
      stopAll: stopSshd,
    };
  }

  if (link) return directDevice();

  // The relay: every client connection is piped to sshd, and can be cut or refused.
  const sockets = new Set<net.Socket>();
  let relayed = 0;
  let cutAt = Infinity;
  let cutting = false;
  /** The client ends of relayed connections: a cut stops reading them (the device's answers still flow, so nothing unread makes a reset). */
  const clients = new Set<net.Socket>();
  const cutAll = () => {
    for (const s of sockets) s.destroy();
    sockets.clear();
  };
  let isRefusing = false;
  const relay = net.createServer((client) => {
    if (isRefusing) return void client.destroy();
    const upstream = net.connect(sshdPort, sshdHost);
    sockets.add(client);
    sockets.add(upstream);
    clients.add(client);
    client.on("data", (chunk: Buffer) => {
      if (cutting) return;
      relayed += chunk.length;
      if (relayed >= cutAt) {
        // Nothing more goes through; what went through already reaches the device before the
        // connections drop, as on a link that fails (sshd holds up to a channel window of it for
        // sftp-server, and drops what it holds when its connection goes).
        cutAt = Infinity;
        cutting = true;
        for (const c of clients) c.pause();
        setTimeout(() => {
          cutting = false;
          cutAll();
        }, CUT_SETTLE_MS);
        return;
      }
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on("drain", () => client.resume());
    upstream.pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
      clients.delete(client);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  const port = await freePort();
  const listen = () => new Promise<void>((resolve, reject) => relay.once("error", reject).listen(port, "127.0.0.1", () => resolve()));
  await listen();

  const device = {
    ...common,
    host: sshdHost,
    port,
    cutAfterBytes(bytes: number) {
      cutAt = relayed + bytes;
    },
    bytesIn: () => relayed,
    async down() {
      cutAll();
      await new Promise((r) => relay.close(r));
      await stopSshd();
    },
    async stopListening() {
      isRefusing = true;
    },
    async up() {
      isRefusing = false;
      if (!sshd) await startSshd();
      if (!relay.listening) await listen();
    },
    async changeHostKey() {
      await stopSshd();
      cutAll();
      keygen(hostKey);
      await startSshd();
    },
    async stopAll() {
      cutAll();
      if (relay.listening) await new Promise((r) => relay.close(r));
      await stopSshd();
    },
  } as RigDevice & { stopAll(): Promise<void> };
  return device;
}

function banner(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once("data", (d) => done(d.toString().startsWith("SSH-")));
    s.once("error", () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}
