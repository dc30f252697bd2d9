import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildAgent, runAgent, startTestPortal, tempDir, type TestPortal } from "../../agent/test-helpers";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { noiseBytes } from "../../tests/helpers/noise";
import { swiftBucket, swiftSkipReason, type TestS3 } from "../../tests/helpers/s3-swift";
import { createApiToken } from "../auth/tokens.service";

// With blobs in a bucket, a large model file is not streamed through the portal: its download
// route, after the same sign-in and organisation checks, redirects to a presigned link of the
// bucket (Swift here) that downloads the right bytes — ranges too — and stops working after
// S3_PRESIGN_TTL_S. Small files still come through the portal. gantry-agent pull-model follows
// the redirect and does not take its token along to the bucket.

const skip = swiftSkipReason();
const bucket = "gantry-links";
const prefix = "links/";
/** Long enough for a loaded machine to fetch the file twice through the bucket before it expires. */
const TTL_S = 10;
let s3: TestS3;
let portal: TestPortal;
let token: string;
let otherToken: string;
let versionId: string;
let checkpointId: string;
let runId: string;
const big = noiseBytes(3 * 1024 * 1024 + 17, 11);
const small = Buffer.from('{"small": "config"}');
const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

beforeAll(async () => {
  if (skip) return;
  buildAgent();
  const swift = await swiftBucket(bucket, prefix);
  swift.close();
  s3 = swift.s3;
  const store = swift.store();
  const db = testDb();
  const { orgId, actor } = await createOrgWithMember(db, "viewer");
  const bigBlob = await store.put([big] as unknown as AsyncIterable<Uint8Array>);
  const smallBlob = await store.put([small] as unknown as AsyncIterable<Uint8Array>);
  const model = await db.model.create({ data: { orgId, name: "pick" } });
  versionId = (await db.modelVersion.create({ data: { orgId, modelId: model.id, number: 1, status: "ready", source: { kind: "upload" }, sha256: bigBlob.sha256, bytes: bigBlob.bytes } })).id;
  checkpointId = (
    await db.modelVersion.create({
      data: { orgId, modelId: model.id, number: 2, status: "ready", kind: "lerobot-checkpoint", source: { kind: "training" }, files: [{ path: "model.safetensors", ...bigBlob }, { path: "config.json", ...smallBlob }] },
    })
  ).id;
  const target = await db.trainingTarget.create({ data: { orgId, name: "gpu", host: "gpu.example.test", username: "u", authKind: "key", credential: "x", workDir: "/w", commandTemplate: "true" } });
  const dataset = await db.dataset.create({ data: { orgId, repoId: "lab/pick" } });
  runId = (await db.trainingRun.create({ data: { orgId, targetId: target.id, datasetId: dataset.id, name: "pick-run", policyType: "act", steps: 10, saveFreq: 10, logFreq: 1, status: "succeeded", checkpointVersionId: checkpointId } })).id;
  token = (await createApiToken(db, { actor, input: { name: "robot", scopes: ["read"] } })).token;
  const other = await createOrgWithMember(db, "owner");
  otherToken = (await createApiToken(db, { actor: other.actor, input: { name: "other", scopes: ["read"] } })).token;
  portal = await startTestPortal({
    DATABASE_URL: process.env.DATABASE_URL!,
    GANTRY_HOME: tempDir("links-home"),
    BLOB_STORE: "s3",
    S3_ENDPOINT: s3.endpoint,
    // Downloaders reach the bucket by another name than the portal does.
    S3_PUBLIC_ENDPOINT: s3.endpoint.replace("127.0.0.1", "localhost"),
    S3_BUCKET: bucket,
    S3_PREFIX: prefix,
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    S3_PRESIGN_MIN_BYTES: String(1024 * 1024),
    S3_PRESIGN_TTL_S: String(TTL_S),
  });
}, 300_000);
afterAll(async () => {
  await portal?.stop();
});

const fileUrl = (id: string, name: string) => `${portal.url}/api/models/versions/${id}/files/${name}`;

describe.skipIf(!!skip)(`Presigned downloads${skip ? ` (skipped: ${skip})` : ""}`, { timeout: 120_000 }, () => {
  it("redirects a large file to a short-lived link of the bucket that gives its bytes and ranges, then expires; small files come through the portal", async () => {
    const res = await fetch(fileUrl(versionId, "model.onnx"), { headers: { authorization: `Bearer ${token}` }, redirect: "manual" });
    expect(res.status, await res.clone().text()).toBe(302);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    const link = new URL(res.headers.get("location")!);
    expect(link.host).toBe(new URL(s3.endpoint.replace("127.0.0.1", "localhost")).host);
    expect(link.searchParams.get("X-Amz-Expires")).toBe(String(TTL_S));
    expect(link.toString()).not.toContain(s3.secretAccessKey);

    const whole = await fetch(link);
    expect(whole.status).toBe(200);
    expect(whole.headers.get("content-type")).toBe("application/octet-stream");
    expect(whole.headers.get("content-disposition")).toBe('attachment; filename="model.onnx"');
    expect(sha(Buffer.from(await whole.arrayBuffer()))).toBe(sha(big));
    const part = await fetch(link, { headers: { range: "bytes=1000-1999" } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(big.subarray(1000, 2000))).toBe(true);

    // Past the link's expiry, counted from when it was signed.
    const signedAt = Date.parse(link.searchParams.get("X-Amz-Date")!.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, "$1-$2-$3T$4:$5:$6Z"));
    await new Promise((r) => setTimeout(r, Math.max(0, signedAt + (TTL_S + 1.5) * 1000 - Date.now())));
    expect((await fetch(link)).status).toBe(403);
    // The portal hands out a fresh one.
    const again = await fetch(fileUrl(versionId, "model.onnx"), { headers: { authorization: `Bearer ${token}` }, redirect: "manual" });
    expect((await fetch(again.headers.get("location")!)).status).toBe(200);

    const direct = await fetch(fileUrl(checkpointId, "config.json"), { headers: { authorization: `Bearer ${token}` }, redirect: "manual" });
    expect(direct.status).toBe(200);
    expect(Buffer.from(await direct.arrayBuffer()).equals(small)).toBe(true);
  });

  it("hands no link to a caller without the right to the file", async () => {
    expect((await fetch(fileUrl(versionId, "model.onnx"), { redirect: "manual" })).status).toBe(401);
    const other = await fetch(fileUrl(versionId, "model.onnx"), { headers: { authorization: `Bearer ${otherToken}` }, redirect: "manual" });
    expect(other.status).toBe(404);
    expect(other.headers.get("location")).toBeNull();
  });

  it("gantry-agent pull-model takes the large file from the bucket and the small one from the portal, checked", async () => {
    const home = tempDir("links-agent");
    expect((await runAgent(["login", "--portal", portal.url, "--token", token], { home })).code).toBe(0);
    const dir = path.join(tempDir("links-models"), "pick");
    const pulled = await runAgent(["pull-model", runId, "--dir", dir, "--json"], { home });
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(sha(fs.readFileSync(path.join(dir, "model.safetensors")))).toBe(sha(big));
    expect(fs.readFileSync(path.join(dir, "config.json")).equals(small)).toBe(true);
    // Cut off half-way: the rest comes from the bucket as a range.
    fs.writeFileSync(path.join(dir, "model.safetensors.part"), big.subarray(0, 1_000_000));
    fs.rmSync(path.join(dir, "model.safetensors"));
    const resumed = await runAgent(["pull-model", runId, "--dir", dir, "--json"], { home });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout.trim().split("\n").pop()!).fetchedBytes).toBe(big.length - 1_000_000);
    expect(sha(fs.readFileSync(path.join(dir, "model.safetensors")))).toBe(sha(big));
  });
});
