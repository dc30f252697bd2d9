import { execFile, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { createS3BlobStore, type S3BlobStore, type S3Settings, type S3StoreOptions } from "../../server/storage/s3-blob-store";
import { createS3Client } from "../../server/storage/s3-client";
import { freePort } from "./sshd-rig";

// A real S3 server for the tests: OpenStack Swift with its S3 gateway (Debian's packages),
// started by the shared scripts in ../shared/infra/s3-swift/ (beside the checkout, as CI places
// it) in a folder and on ports of its own. Its start-up is CPU-bound, so a run starts it once:
// the first test file that asks for it (sharedSwift) starts it and records where it listens in
// a folder the global setup made; later files, in any fork, find it there; the global teardown
// stops it. Each file uses buckets of its own.

const run = promisify(execFile);
const SCRIPTS = path.resolve("../shared/infra/s3-swift");

export interface TestS3 {
  endpoint: string;
  /** The folder it runs in. */
  dir: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  stop(): Promise<void>;
}

/** Why Swift cannot be started here, or null when it can. */
export function swiftSkipReason(): string | null {
  if (!fs.existsSync(path.join(SCRIPTS, "start.sh"))) return `${SCRIPTS}/start.sh is absent (CI places shared/ beside the checkout)`;
  const missing = ["swift-proxy-server", "swift-object-server", "memcached"].filter((c) => {
    try {
      execFileSync("sh", ["-c", `command -v ${c}`], { stdio: "ignore", env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length) return `OpenStack Swift is not installed (${missing.join(", ")} missing): apt-get install -y swift swift-proxy swift-object swift-container swift-account python3-swift memcached attr`;
  if (process.getuid?.() !== 0) return "the test Swift runs its servers as root";
  return null;
}

/** The folder a run's shared Swift is recorded in (global setup). */
export function createSharedSwiftHome(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "gantry-s3-shared-"));
}

/** Stops the run's shared Swift, if a test file started one (global teardown). */
export async function stopSharedSwift(home: string): Promise<void> {
  const record = path.join(home, "swift.json");
  if (fs.existsSync(record)) {
    const { dir } = JSON.parse(fs.readFileSync(record, "utf8")) as { dir: string };
    await run("bash", [path.join(SCRIPTS, "stop.sh")], { env: { ...process.env, D: dir, WIPE: "1" } }).catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
  fs.rmSync(home, { recursive: true, force: true });
}

/** The run's one Swift: started by the first caller, found by the others; stopping it is the teardown's. */
export async function sharedSwift(): Promise<TestS3> {
  const home = process.env.GANTRY_TEST_SWIFT_HOME;
  if (!home) return startSwift();
  const record = path.join(home, "swift.json");
  const failed = path.join(home, "failed");
  const lock = path.join(home, "lock");
  const deadline = Date.now() + 240_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      if (Date.now() > deadline) throw new Error(`Another test file has been starting Swift for four minutes (${lock})`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  try {
    if (fs.existsSync(failed)) throw new Error(`Swift did not start for this run: ${fs.readFileSync(failed, "utf8")}`);
    if (!fs.existsSync(record)) {
      try {
        const started = await startSwift();
        fs.writeFileSync(record, JSON.stringify({ ...started, stop: undefined }));
      } catch (error) {
        fs.writeFileSync(failed, (error as Error).message);
        throw error;
      }
    }
    const found = JSON.parse(fs.readFileSync(record, "utf8")) as Omit<TestS3, "stop">;
    return { ...found, stop: async () => {} };
  } finally {
    fs.rmdirSync(lock);
  }
}

export async function startSwift(): Promise<TestS3> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-s3-"));
  const [proxy, obj, cont, acct, mc] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const env = { ...process.env, D: dir, P_PROXY: String(proxy), P_OBJ: String(obj), P_CONT: String(cont), P_ACCT: String(acct), P_MC: String(mc), PATH: `${process.env.PATH}:/usr/sbin:/sbin` };
  const stop = async () => {
    await run("bash", [path.join(SCRIPTS, "stop.sh")], { env: { ...env, WIPE: "1" } }).catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await run("sh", [path.join(SCRIPTS, "setup.sh")], { env, timeout: 60_000 });
    const { stdout } = await run("bash", [path.join(SCRIPTS, "start.sh")], { env, timeout: 120_000 });
    if (!/OK/.test(stdout)) throw new Error(`Swift did not start: ${stdout}`);
  } catch (error) {
    await stop();
    throw error;
  }
  return { endpoint: `http://127.0.0.1:${proxy}`, dir, region: "us-east-1", accessKeyId: "test:tester", secretAccessKey: "testing", stop };
}

export interface SwiftBucket {
  s3: TestS3;
  /** A plain client, to look at the bucket as the tests need (destroyed by `close`). */
  raw: S3Client;
  settings: S3Settings;
  /** A blob store on the bucket under `prefix`. */
  store(options?: S3StoreOptions): S3BlobStore;
  close(): void;
}

/** A bucket of the test file's own on the run's Swift (made here), and blob stores on it. */
export async function swiftBucket(bucket: string, prefix = ""): Promise<SwiftBucket> {
  const s3 = await sharedSwift();
  const raw = createS3Client({ ...s3, forcePathStyle: true });
  await raw.send(new CreateBucketCommand({ Bucket: bucket }));
  const settings: S3Settings = { endpoint: s3.endpoint, bucket, region: s3.region, forcePathStyle: true, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, prefix };
  return { s3, raw, settings, store: (options) => createS3BlobStore(settings, options), close: () => raw.destroy() };
}
