import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createTestDatabase } from "../tests/setup/test-database";
import { startFirebaseEmulator } from "../tests/helpers/firebase-emulator";
import { startHubStandIn } from "../tests/helpers/hub-stand-in";
import { buildConvNet } from "../tests/helpers/onnx-models";
import { E2E_PORT } from "../playwright.config";

// Starts Gantry exactly as a person does (`scripts/start.ts`: migrations, build if needed,
// portal and worker) on a database of its own, beside a Firebase Auth emulator peer.

export default async function globalSetup() {
  // A portal already answering on the port (another checkout's test run) would be tested in
  // place of this one: the health check below cannot tell them apart.
  const isTaken = await fetch(`http://localhost:${E2E_PORT}/api/health`).then(() => true, () => false);
  if (isTaken) throw new Error(`Something already answers on port ${E2E_PORT} (another test run?); stop it, or set E2E_PORT to a free port`);
  const database = await createTestDatabase("e2e");
  const firebase = await startFirebaseEmulator({ projectId: "gantry-e2e" });
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-e2e-"));
  // A model hub stand-in serving one public ONNX file, for the models page.
  const hub = await startHubStandIn([{ repo: "lerobot/so101-conv", filename: "model.onnx", content: buildConvNet() }]);
  const baseUrl = `http://localhost:${E2E_PORT}`;
  process.env.E2E_FIREBASE_HOST = firebase.host;
  process.env.E2E_DATABASE_URL = database.url;
  // The portal's import root (GANTRY_HOME/imports by default): specs put folders to score there.
  process.env.E2E_IMPORT_ROOT = path.join(home, "imports");
  // The browser test signs in with this account through the Firebase JS SDK.
  const firebaseUser = { email: "fb-user@example.test", password: "firebase-pass-123", displayName: "Firebase User", emailVerified: true };
  await firebase.addUser(firebaseUser);
  process.env.E2E_FIREBASE_EMAIL = firebaseUser.email;
  process.env.E2E_FIREBASE_PASSWORD = firebaseUser.password;

  const server = spawn(process.execPath, ["--import", "tsx", "scripts/start.ts"], {
    env: {
      ...process.env,
      DATABASE_URL: database.url,
      PORT: String(E2E_PORT),
      // The model server beside it, on a port of its own; endpoint pages show this address.
      SERVE_PORT: String(E2E_PORT + 1),
      PUBLIC_URL: baseUrl,
      GANTRY_HOME: home,
      WORKER_HEARTBEAT_MS: "1000",
      // Every spec signs up people of its own, all from this machine's address.
      SIGNUPS_PER_HOUR: "1000",
      ALLOW_SIGNUP: "true",
      // The hub stand-in and the sshd devices listen on this machine.
      OUTBOUND_ALLOW_LOOPBACK: "true",
      WORKER_STALE_AFTER_MS: "10000",
      FIREBASE_PROJECT_ID: "gantry-e2e",
      FIREBASE_API_KEY: "e2e-api-key",
      FIREBASE_AUTH_EMULATOR_HOST: firebase.host,
      FIREBASE_ALLOW_EMULATOR: "true",
      HF_ENDPOINT: hub.url,
      NEXT_TELEMETRY_DISABLED: "1",
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const log: string[] = [];
  const keep = (chunk: Buffer) => {
    log.push(chunk.toString());
    if (process.env.E2E_SERVER_LOG) process.stdout.write(chunk);
  };
  server.stdout!.on("data", keep);
  server.stderr!.on("data", keep);

  const deadline = Date.now() + 240_000;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`Gantry exited while starting:\n${log.join("").slice(-4000)}`);
    try {
      const res = await fetch(`${baseUrl}/api/health`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`Gantry did not become healthy in time:\n${log.join("").slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }

  return async () => {
    await new Promise<void>((resolve) => {
      server.once("exit", () => resolve());
      process.kill(-server.pid!, "SIGINT");
      setTimeout(() => {
        try {
          process.kill(-server.pid!, "SIGKILL");
        } catch {
          // already gone
        }
        resolve();
      }, 20_000).unref();
    });
    await firebase.stop();
    await hub.close();
    await database.drop();
    fs.rmSync(home, { recursive: true, force: true });
  };
}
