import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";

// Shared by the agent's tests and the ingest benchmark: a recording folder made with ffmpeg,
// the edge routes served by server/edge/test-portal.ts, the bundled agent run as a child.

export const AGENT_BUNDLE = path.resolve("agent/dist/gantry-agent.cjs");

/** Builds the agent bundle (the file users run), once per process. */
let built = false;
export function buildAgent(): string {
  if (!built) execFileSync(process.execPath, [path.resolve("agent/build.mjs")], { stdio: "pipe" });
  built = true;
  return AGENT_BUNDLE;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `gantry-${prefix}-`));
}

/**
 * A LeRobot-style recording of one episode: PNG frames per camera and a JSONL data file.
 * `noise` frames are incompressible (large files); testsrc frames are small, like real ones.
 */
export function recordEpisode(root: string, { episode, cameras = ["front", "wrist"], frames = 10, size = "160x120", fps = 30, noise = false, cameraFolder = (c: string) => c }: { episode: number; cameras?: string[]; frames?: number; size?: string; fps?: number; noise?: boolean; cameraFolder?: (camera: string) => string }): void {
  const ep = String(episode).padStart(6, "0");
  for (const [i, camera] of cameras.entries()) {
    const dir = path.join(root, "images", cameraFolder(camera), `episode-${ep}`);
    fs.mkdirSync(dir, { recursive: true });
    const source = noise ? `nullsrc=s=${size}:r=${fps},geq=random(1)*255:random(1)*255:random(1)*255` : `testsrc=size=${size}:rate=${fps}`;
    execFileSync("ffmpeg", ["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source, "-frames:v", String(frames), "-vf", `hue=h=${i * 90}`, "-start_number", "0", path.join(dir, "frame-%06d.png")]);
  }
  fs.mkdirSync(path.join(root, "data"), { recursive: true });
  const rows = Array.from({ length: frames }, (_, i) => JSON.stringify({ frame_index: i, timestamp: i / fps, "observation.state": [Math.sin(i / 10), Math.cos(i / 10)], action: [Math.sin(i / 10 + 0.1), Math.cos(i / 10 + 0.1)] }));
  fs.writeFileSync(path.join(root, "data", `episode-${ep}.jsonl`), rows.join("\n") + "\n");
}

export interface TestPortal {
  url: string;
  port: number;
  child: ChildProcess;
  log: () => string;
  stop(): Promise<void>;
}

/** Starts the edge routes on 127.0.0.1 with the given settings (on top of this process's). */
export async function startTestPortal(env: Record<string, string>): Promise<TestPortal> {
  const child = spawn(process.execPath, ["--import", "tsx", path.resolve("server/edge/test-portal.ts")], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      output += d.toString();
      const m = /listening (\d+)/.exec(output);
      if (m) resolve(Number(m[1]));
    });
    child.on("exit", (code) => reject(new Error(`The test portal exited with ${code}: ${output}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    child,
    log: () => output,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

export interface AgentRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runAgent(args: string[], { home, env = {}, onSpawn }: { home: string; env?: Record<string, string>; onSpawn?: (child: ChildProcess) => void }): Promise<AgentRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [AGENT_BUNDLE, ...args], { env: { ...process.env, GANTRY_AGENT_HOME: home, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    onSpawn?.(child);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * A TCP relay to `targetPort` that counts the bytes sent through it. `onBytes` may cut every
 * connection (as a network failure would), or hold the sender (reading no more from it) until a
 * promise settles. It reads no faster than the far end takes the bytes, so what it counted is
 * what was on its way there, not a pile in the relay's memory.
 */
export async function startRelay(targetPort: number, onBytes: (total: number, cut: () => void, hold: (until: Promise<unknown>) => void) => void): Promise<{ port: number; total: () => number; close(): void }> {
  let total = 0;
  const sockets = new Set<net.Socket>();
  const cut = () => {
    for (const s of sockets) s.destroy();
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.add(client).add(upstream);
    client.on("data", (d: Buffer) => {
      total += d.length;
      if (!upstream.write(d)) client.pause();
      onBytes(total, cut, (until) => {
        client.pause();
        void until.finally(() => client.resume());
      });
    });
    upstream.on("drain", () => client.resume());
    upstream.on("data", (d: Buffer) => client.write(d));
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as net.AddressInfo;
  return { port: address.port, total: () => total, close: () => (cut(), server.close()) };
}

/**
 * What a portal front does with one request: forward it (null), answer it itself, stop listening
 * for a while, or forward it and drop the portal's answer (the connection is cut before it).
 */
export type FrontAction = null | { status: number; body: string } | { refuseForMs: number } | { dropAnswer: true };

export interface PortalFront {
  url: string;
  /** How many requests of this method and path reached the front (while it listened). */
  seen(method: string, pathname: string): number;
  close(): Promise<void>;
}

/**
 * An HTTP front to a test portal that forwards every request to it, except those `intercept`
 * answers itself — with a status and a body, as a portal with a fault would, or by dropping the
 * connection and refusing new ones for a while, as a portal that went down and came back.
 */
export async function startPortalFront(targetPort: number, intercept: (request: { method: string; pathname: string; count: number }) => FrontAction | Promise<FrontAction>): Promise<PortalFront> {
  const counts = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  let reopen: NodeJS.Timeout | null = null;
  let isClosed = false;
  const server = http.createServer(async (req, res) => {
    const pathname = new URL(req.url ?? "/", "http://front").pathname;
    const key = `${req.method} ${pathname}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const action = await intercept({ method: req.method ?? "GET", pathname, count: counts.get(key)! });
    if (action && "refuseForMs" in action) {
      server.close();
      for (const socket of sockets) socket.destroy();
      reopen = setTimeout(() => {
        if (!isClosed) server.listen(port, "127.0.0.1");
      }, action.refuseForMs);
      return;
    }
    if (action && "status" in action) {
      res.writeHead(action.status, { "content-type": "application/json" }).end(action.body);
      return;
    }
    const upstream = http.request({ host: "127.0.0.1", port: targetPort, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      if (action) {
        answer.resume().once("end", () => req.socket.destroy());
        return;
      }
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    seen: (method, pathname) => counts.get(`${method} ${pathname}`) ?? 0,
    close: () =>
      new Promise((resolve) => {
        isClosed = true;
        if (reopen) clearTimeout(reopen);
        for (const socket of sockets) socket.destroy();
        if (server.listening) server.close(() => resolve());
        else resolve();
      }),
  };
}

/**
 * A load balancer without sticky sessions, in the small: new connections go to `backends[current]`;
 * `bytesTo` counts what each backend was sent. `lose()` drops every client
 * connection without telling the process behind, whose request then waits for bytes that never
 * come (as behind a dead NAT entry), and sends later connections to the next backend.
 */
export async function startBalancer(backends: number[]) {
  let current = 0;
  const bytesTo = backends.map(() => 0);
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; isHung: boolean }>();
  const server = net.createServer((client) => {
    const backend = current;
    const pair = { client, upstream: net.connect(backends[backend], "127.0.0.1"), isHung: false };
    const { upstream } = pair;
    pairs.add(pair);
    client.on("data", (d: Buffer) => {
      bytesTo[backend] += d.length;
      if (!upstream.write(d)) client.pause();
    });
    upstream.on("drain", () => client.resume());
    upstream.on("data", (d: Buffer) => client.write(d));
    client.on("close", () => {
      if (!pair.isHung) upstream.destroy();
    });
    upstream.on("close", () => {
      client.destroy();
      pairs.delete(pair);
    });
    client.on("error", () => {});
    upstream.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    bytesTo,
    lose() {
      current = (current + 1) % backends.length;
      for (const pair of pairs) {
        pair.isHung = true;
        pair.client.removeAllListeners("data");
        pair.client.destroy();
      }
    },
    /** Ends the connections left hanging, as their TCP timeouts eventually would. */
    close() {
      server.close();
      for (const pair of pairs) pair.upstream.destroy();
    },
  };
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface TestSshd {
  port: number;
  /** The `-e` argument for rsync: ssh with the client key, trusting the fresh host key. */
  sshCommand: string;
  stop(): void;
}

/** OpenSSH's sshd on 127.0.0.1 with a fresh host key, taking one generated client key (as the user running it). */
export async function startTestSshd(): Promise<TestSshd> {
  const dir = tempDir("sshd");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "host_key")]);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "client_key")]);
  fs.copyFileSync(path.join(dir, "client_key.pub"), path.join(dir, "authorized_keys"));
  const port = await freePort();
  const config = [
    `Port ${port}`,
    "ListenAddress 127.0.0.1",
    `HostKey ${path.join(dir, "host_key")}`,
    `PidFile ${path.join(dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
    "PermitRootLogin yes",
    "StrictModes no",
    "UsePAM no",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PubkeyAuthentication yes",
  ];
  fs.writeFileSync(path.join(dir, "sshd_config"), config.join("\n") + "\n");
  // sshd as root wants its privilege-separation folder, which only a running service makes.
  if (process.getuid?.() === 0) fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const sshd = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", path.join(dir, "sshd_config")], { stdio: ["ignore", "ignore", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    let log = "";
    sshd.stderr!.on("data", (d: Buffer) => {
      log += d.toString();
      if (log.includes("Server listening")) resolve();
    });
    sshd.on("exit", (code) => reject(new Error(`sshd exited with ${code}: ${log}`)));
  });
  return {
    port,
    sshCommand: `ssh -p ${port} -i ${path.join(dir, "client_key")} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR`,
    stop: () => sshd.kill("SIGTERM"),
  };
}

/** rsync of a folder's contents over the test sshd, as the earlier edge clients sent frames. */
export function rsyncOverSsh(sshd: TestSshd, from: string, to: string): void {
  execFileSync("rsync", ["-a", "--mkpath", "-e", sshd.sshCommand, `${from}/`, `${os.userInfo().username}@127.0.0.1:${to}/`], { stdio: "pipe" });
}
