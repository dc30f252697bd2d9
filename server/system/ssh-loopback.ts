import type { AddressInfo } from "node:net";
import ssh2, { Client, type ParsedKey } from "ssh2";
import { fingerprintOf } from "../ssh/ssh-client";

// ssh2 is CommonJS, and Node's ES module loader finds only some of its exports by name.
const { Server, utils } = ssh2;

// The self-test's SSH check: a throwaway server on loopback with fresh ed25519 keys, and the
// same client library Gantry uses for devices and GPU hosts connecting to it — host key
// checked, public-key sign-in, one command. It proves this Node's crypto can do what a real
// connection needs without reaching any other machine.

// ssh2's generator strips every leading zero byte from an ed25519 public key, so about one key in
// 256 comes out 31 bytes long, and ssh2 itself then refuses it ("Malformed OpenSSH public key").
// Such a pair is thrown away and another drawn; the check is about this Node, not that slip.
export function freshEd25519KeyPair(): { private: string; public: string; parsed: ParsedKey } {
  for (let attempt = 0; ; attempt++) {
    const pair = utils.generateKeyPairSync("ed25519");
    const key = utils.parseKey(pair.public);
    if (!(key instanceof Error)) return { ...pair, parsed: Array.isArray(key) ? key[0] : key };
    if (attempt === 8) throw key;
  }
}

export async function checkSshLoopback({ signal }: { signal: AbortSignal }): Promise<{ kex: string; cipher: string; ms: number }> {
  const hostKey = freshEd25519KeyPair();
  const userKey = freshEd25519KeyPair();
  const allowed = userKey.parsed;
  const hostFingerprint = fingerprintOf(hostKey.parsed.getPublicSSH());

  const server = new Server({ hostKeys: [hostKey.private] }, (conn) => {
    conn.on("error", () => {});
    conn.on("authentication", (ctx) => {
      const isAllowed = ctx.method === "publickey" && ctx.key.algo === allowed.type && ctx.key.data.equals(allowed.getPublicSSH());
      if (!isAllowed) return ctx.reject(["publickey"]);
      // Without a signature the client is only asking whether the key would do.
      if (ctx.signature && !allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo)) return ctx.reject(["publickey"]);
      ctx.accept();
    });
    conn.on("ready", () => {
      conn.on("session", (accept) => {
        accept().once("exec", (acceptExec, _reject, info) => {
          const stream = acceptExec();
          stream.write(`ran: ${info.command}\n`);
          stream.exit(0);
          stream.end();
        });
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const client = new Client();
  const started = performance.now();
  try {
    return await new Promise((resolve, reject) => {
      let negotiated = { kex: "?", cipher: "?" };
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      const fail = (error: Error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      };
      client.on("handshake", (n) => (negotiated = { kex: n.kex, cipher: n.cs.cipher }));
      client.on("error", (error) => fail(new Error(`The SSH client could not connect to a local test server: ${error.message}`)));
      client.on("ready", () => {
        client.exec("echo gantry", (error, stream) => {
          if (error) return fail(new Error(`The SSH client signed in but could not run a command: ${error.message}`));
          let output = "";
          stream.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
          stream.stderr.resume();
          stream.on("close", (code: number | null) => {
            if (code !== 0 || !output.includes("ran: echo gantry")) return fail(new Error(`The test command over SSH came back wrong (exit ${code}, "${output.trim()}")`));
            signal.removeEventListener("abort", onAbort);
            resolve({ ...negotiated, ms: Math.max(1, Math.round(performance.now() - started)) });
          });
        });
      });
      client.connect({
        host: "127.0.0.1",
        port,
        username: "selftest",
        privateKey: userKey.private,
        readyTimeout: 10_000,
        hostVerifier: (key: Buffer) => fingerprintOf(key) === hostFingerprint,
      });
    });
  } finally {
    client.end();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
