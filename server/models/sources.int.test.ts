import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createDb, type Db } from "../db";
import { addMember, createOrgWithMember } from "../../tests/helpers/factories";
import { startHubStandIn, type HubStandIn } from "../../tests/helpers/hub-stand-in";
import type { OrgActor } from "../auth/roles";
import { createProgressReporter } from "../jobs/progress";
import { createLocalBlobStore } from "../storage/local-blob-store";
import { addVersionFromHub, addVersionFromUrl, createModel } from "./registry.service";
import { addVersionFromHubInput, addVersionFromUrlInput } from "./models.schemas";
import { downloadFromHub, downloadUrl, fetchModelVersion, openToken, sealToken } from "./sources.service";
import { createCaller } from "../api/root";
import { resolveRequestIdentity } from "../auth/request-actor";
import { createApiToken } from "../auth/tokens.service";
import { env } from "../env";

// A database of its own: workers other test files start would take these jobs.
let database: TestDatabase;
let db: Db;
const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-sources-"));
const blobs = createLocalBlobStore({ root: path.join(root, "blobs") });
const cacheDir = path.join(root, "hf-cache");
const key = "test-key";
const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

const publicFile = crypto.randomBytes(300_000);
const privateFile = crypto.randomBytes(5_000);
const slowFile = crypto.randomBytes(4_096);
let hub: HubStandIn;
let operator: OrgActor;

beforeAll(async () => {
  database = await createTestDatabase("sources");
  db = createDb(database.url, 3);
  hub = await startHubStandIn([
    { repo: "lerobot/act_so100", filename: "model.onnx", content: publicFile },
    { repo: "lerobot/act_so100", revision: "v2", filename: "nested/policy.onnx", content: publicFile },
    { repo: "lab/secret", filename: "model.onnx", content: privateFile, isPrivate: true },
    { repo: "lab/slow", filename: "model.onnx", content: slowFile, slowMs: 50 },
  ]);
  operator = (await createOrgWithMember(db, "operator")).actor;
});
afterAll(async () => {
  await hub.close();
  await db.$disconnect();
  await database.drop();
  fs.rmSync(root, { recursive: true, force: true });
});

const hubFile = (repo: string, filename = "model.onnx", extra: { revision?: string; token?: string } = {}) => ({ endpoint: hub.url, repo, revision: extra.revision ?? "main", filename, token: extra.token });

describe("downloadUrl", () => {
  it("streams a URL into the blob store, reporting progress from Content-Length", async () => {
    const seen: number[] = [];
    const got = await downloadUrl(`${hub.url}/content/${sha(publicFile)}`, { blobs, timeoutMs: 10_000, onProgress: (f) => void seen.push(f) });
    expect(got).toEqual({ sha256: sha(publicFile), bytes: publicFile.length });
    expect(seen.length).toBeGreaterThanOrEqual(3);
    expect(seen.at(-1)).toBeGreaterThan(0.9);
  });

  it("says when there is nothing at the address, and refuses a file over the limit", async () => {
    await expect(downloadUrl(`${hub.url}/content/${"0".repeat(64)}`, { blobs, timeoutMs: 10_000 })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(downloadUrl(`${hub.url}/content/${sha(publicFile)}`, { blobs, timeoutMs: 10_000, maxBytes: 1000 })).rejects.toThrow(/MODEL_MAX_UPLOAD_BYTES/);
  });

  it("stops at the download timeout and names MAX_DOWNLOAD_TIMEOUT", async () => {
    await expect(downloadUrl(`${hub.url}/content/${sha(slowFile)}`, { blobs, timeoutMs: 300 })).rejects.toThrow(/MAX_DOWNLOAD_TIMEOUT/);
  });
});

describe("downloadFromHub", () => {
  it("follows the resolve redirect, caches by content, and does not download a cached file again", async () => {
    const hitsBefore = hub.contentHits.get(sha(publicFile)) ?? 0;
    const first = await downloadFromHub(hubFile("lerobot/act_so100"), { blobs, cacheDir, timeoutMs: 10_000 });
    expect(first).toMatchObject({ sha256: sha(publicFile), bytes: publicFile.length, isCached: false });
    expect(await blobs.has(sha(publicFile))).toBe(true);
    expect(hub.contentHits.get(sha(publicFile))).toBe(hitsBefore + 1);
    const again = await downloadFromHub(hubFile("lerobot/act_so100", "nested/policy.onnx", { revision: "v2" }), { blobs, cacheDir, timeoutMs: 10_000 });
    expect(again).toMatchObject({ sha256: sha(publicFile), isCached: true });
    expect(hub.contentHits.get(sha(publicFile))).toBe(hitsBefore + 1);
    expect(fs.existsSync(path.join(cacheDir, "sha256", sha(publicFile).slice(0, 2)))).toBe(true);
  });

  it("needs the token for a private repository and sends it as a bearer token", async () => {
    await expect(downloadFromHub(hubFile("lab/secret"), { blobs, cacheDir, timeoutMs: 10_000 })).rejects.toThrow(/refused access.*add a token/);
    const got = await downloadFromHub(hubFile("lab/secret", "model.onnx", { token: hub.token }), { blobs, cacheDir, timeoutMs: 10_000 });
    expect(got.sha256).toBe(sha(privateFile));
  });

  it("says when the hub has no such file", async () => {
    await expect(downloadFromHub(hubFile("lerobot/act_so100", "missing.onnx"), { blobs, cacheDir, timeoutMs: 10_000 })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("fails a slow download at MAX_DOWNLOAD_TIMEOUT", async () => {
    await expect(downloadFromHub(hubFile("lab/slow"), { blobs, cacheDir, timeoutMs: 300 })).rejects.toThrow(/took longer than MAX_DOWNLOAD_TIMEOUT/);
  });
});

describe("hub input", () => {
  it("validates repository ids, revisions and file names", () => {
    const base = { modelId: crypto.randomUUID(), repo: "lerobot/act", filename: "model.onnx" };
    expect(addVersionFromHubInput.parse(base).revision).toBe("main");
    for (const bad of [{ repo: "noslash" }, { repo: "a/b/c" }, { repo: "../x" }, { filename: "../model.onnx" }, { filename: "/etc/passwd" }, { filename: "a/../../b" }, { revision: "../main" }]) {
      expect(addVersionFromHubInput.safeParse({ ...base, ...bad }).success, JSON.stringify(bad)).toBe(false);
    }
  });
});

describe("url input", () => {
  it("takes http and https addresses without credentials only", () => {
    const ok = (url: string) => addVersionFromUrlInput.safeParse({ modelId: crypto.randomUUID(), url }).success;
    expect(ok("https://example.test/m.onnx?sig=abc")).toBe(true);
    expect(ok("http://10.0.0.2:8000/m.onnx")).toBe(true);
    for (const bad of ["ftp://example.test/m.onnx", "file:///etc/passwd", "https://user:pw@example.test/m.onnx", "not a url"]) expect(ok(bad), bad).toBe(false);
  });
});

describe("sealed tokens", () => {
  it("open only with the same key", async () => {
    const sealed = await sealToken(blobs, "hf_secret", key);
    expect(await openToken(blobs, sealed, key)).toBe("hf_secret");
    await expect(openToken(blobs, sealed, "another key")).rejects.toThrow();
  });
});

describe("fetchModelVersion", () => {
  async function fetchOf(versionId: string, jobId: string, credential?: string, extra: { timeoutMs?: number; isLastAttempt?: boolean } = {}) {
    const progress = createProgressReporter(db, { id: jobId, orgId: operator.orgId });
    return fetchModelVersion(db, {
      versionId, orgId: operator.orgId, createdById: operator.userId, dims: { batch: 1 }, credential, blobs, secretKey: key, cacheDir,
      timeoutMs: extra.timeoutMs ?? 10_000, maxBytes: 10_000_000, isLastAttempt: extra.isLastAttempt ?? true, progress, signal: new AbortController().signal,
    });
  }

  it("downloads a private hub file with a token that is never stored, then queues validation", async () => {
    const model = await createModel(db, { actor: operator, input: { name: `hub ${crypto.randomUUID().slice(0, 8)}`, description: "" } });
    const input = addVersionFromHubInput.parse({ modelId: model.id, repo: "lab/secret", filename: "model.onnx", token: hub.token });
    const added = await addVersionFromHub(db, { actor: operator, input, endpoint: hub.url, blobs, secretKey: key });
    const job = await db.job.findUniqueOrThrow({ where: { id: added.jobId } });
    expect(job.kind).toBe("models.fetch");
    const credential = (job.payload as { credential?: string }).credential!;
    // The token appears nowhere in the database.
    const dump = JSON.stringify(await db.$queryRaw`SELECT (SELECT json_agg(j) FROM "Job" j WHERE j."orgId" = ${operator.orgId}::uuid) AS jobs,
      (SELECT json_agg(v) FROM "ModelVersion" v WHERE v."orgId" = ${operator.orgId}::uuid) AS versions,
      (SELECT json_agg(a) FROM "AuditEvent" a WHERE a."orgId" = ${operator.orgId}::uuid) AS audit,
      (SELECT json_agg(e) FROM "JobEvent" e WHERE e."orgId" = ${operator.orgId}::uuid) AS events`);
    expect(dump).not.toContain(hub.token);

    const result = await fetchOf(added.versionId, added.jobId, credential);
    expect(result).toMatchObject({ sha256: sha(privateFile), bytes: privateFile.length });
    const version = await db.modelVersion.findUniqueOrThrow({ where: { id: added.versionId } });
    expect(version).toMatchObject({ status: "validating", sha256: sha(privateFile), bytes: BigInt(privateFile.length) });
    const validate = await db.job.findUniqueOrThrow({ where: { id: version.jobId! } });
    expect(validate.kind).toBe("models.validate");
    expect(validate.payload).toMatchObject({ versionId: added.versionId, dims: { batch: 1 } });
    expect(await blobs.has(credential)).toBe(false);
    expect(hub.requests.filter((r) => r.path.startsWith("/lab/secret/")).some((r) => r.hasToken)).toBe(true);
    // A second delivery of the same job does nothing.
    expect(await fetchOf(added.versionId, added.jobId)).toEqual({ skipped: true });
  });

  it("keeps a signed URL's query sealed: redacted for viewers and in the audit log, fetched whole", async () => {
    const signature = crypto.randomBytes(32).toString("hex");
    const accessKey = `AKIA${crypto.randomBytes(8).toString("hex").toUpperCase()}`;
    const url = `${hub.url}/content/${sha(publicFile)}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${accessKey}%2F20261203%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Expires=3600&X-Amz-Signature=${signature}`;
    const redacted = `${hub.url}/content/${sha(publicFile)}?X-Amz-Algorithm=redacted&X-Amz-Credential=redacted&X-Amz-Expires=redacted&X-Amz-Signature=redacted`;
    const model = await createModel(db, { actor: operator, input: { name: `signed ${crypto.randomUUID().slice(0, 8)}`, description: "" } });
    const added = await addVersionFromUrl(db, { actor: operator, input: addVersionFromUrlInput.parse({ modelId: model.id, url }) });
    const readable = async () =>
      JSON.stringify(await db.$queryRaw`SELECT (SELECT json_agg(j) FROM "Job" j WHERE j."orgId" = ${operator.orgId}::uuid) AS jobs,
        (SELECT json_agg(v) FROM "ModelVersion" v WHERE v."orgId" = ${operator.orgId}::uuid) AS versions,
        (SELECT json_agg(a) FROM "AuditEvent" a WHERE a."orgId" = ${operator.orgId}::uuid) AS audit,
        (SELECT json_agg(e) FROM "JobEvent" e WHERE e."orgId" = ${operator.orgId}::uuid) AS events`);
    expect(await readable()).not.toMatch(new RegExp(`${signature}|${accessKey}`));

    // As the portal answers a viewer (the version) and an admin (the audit log).
    const as = async (role: "viewer" | "admin") => {
      const member = await addMember(db, operator.orgId, role);
      const { token } = await createApiToken(db, { actor: member, input: { name: role, scopes: [role === "admin" ? "admin" : "read"] } });
      return createCaller({ ...(await resolveRequestIdentity(db, new Headers({ authorization: `Bearer ${token}` }))), db, hub: {} as never, baseUrl: "http://localhost" });
    };
    const shown = (await (await as("viewer")).models.get({ modelId: model.id })).versions.find((v) => v.id === added.versionId)!;
    expect(shown.source).toEqual({ kind: "url", url: redacted });
    const audit = (await (await as("admin")).audit.list({ action: "model.version_add" })).items.find((a) => a.target === added.versionId)!;
    expect(audit.data).toEqual({ model: expect.stringMatching(/^signed /), number: 1, source: { kind: "url", url: redacted } });

    // The fetch asks for the whole address, signature and all.
    const progress = createProgressReporter(db, { id: added.jobId, orgId: operator.orgId });
    const result = await fetchModelVersion(db, {
      versionId: added.versionId, orgId: operator.orgId, createdById: operator.userId, dims: {}, blobs, secretKey: env().ENCRYPTION_KEY, cacheDir,
      timeoutMs: 10_000, maxBytes: 10_000_000, isLastAttempt: true, progress, signal: new AbortController().signal,
    });
    expect(result).toMatchObject({ sha256: sha(publicFile) });
    expect(hub.requests.some((r) => r.query.includes(`X-Amz-Signature=${signature}`))).toBe(true);
    expect(await readable()).not.toMatch(new RegExp(`${signature}|${accessKey}`));

    // A version recorded before URLs were sealed is shown redacted too.
    const older = await db.modelVersion.create({ data: { orgId: operator.orgId, modelId: model.id, number: 99, status: "failed", source: { kind: "url", url } } });
    const olderShown = (await (await as("viewer")).models.get({ modelId: model.id })).versions.find((v) => v.id === older.id)!;
    expect(olderShown.source).toEqual({ kind: "url", url: redacted });
  });

  it("marks a version failed when its URL times out, naming MAX_DOWNLOAD_TIMEOUT", async () => {
    const model = await createModel(db, { actor: operator, input: { name: `url ${crypto.randomUUID().slice(0, 8)}`, description: "" } });
    const added = await addVersionFromUrl(db, { actor: operator, input: { modelId: model.id, url: `${hub.url}/content/${sha(slowFile)}`, dims: {} } });
    await expect(fetchOf(added.versionId, added.jobId, undefined, { timeoutMs: 300 })).rejects.toThrow(/MAX_DOWNLOAD_TIMEOUT/);
    const version = await db.modelVersion.findUniqueOrThrow({ where: { id: added.versionId } });
    expect(version.status).toBe("failed");
    expect(version.error).toMatch(/MAX_DOWNLOAD_TIMEOUT/);
  });

  it("fetches again when a failed fetch is retried, but not without the token it no longer keeps", async () => {
    const model = await createModel(db, { actor: operator, input: { name: `again ${crypto.randomUUID().slice(0, 8)}`, description: "" } });
    const added = await addVersionFromUrl(db, { actor: operator, input: { modelId: model.id, url: `${hub.url}/content/${sha(publicFile)}`, dims: {} } });
    await db.modelVersion.update({ where: { id: added.versionId }, data: { status: "failed", error: "earlier failure" } });
    expect(await fetchOf(added.versionId, added.jobId)).toMatchObject({ sha256: sha(publicFile) });
    expect((await db.modelVersion.findUniqueOrThrow({ where: { id: added.versionId } })).status).toBe("validating");

    const input = addVersionFromHubInput.parse({ modelId: model.id, repo: "lab/secret", filename: "model.onnx", token: hub.token });
    const hubbed = await addVersionFromHub(db, { actor: operator, input, endpoint: hub.url, blobs, secretKey: key });
    const credential = ((await db.job.findUniqueOrThrow({ where: { id: hubbed.jobId } })).payload as { credential: string }).credential;
    await blobs.delete(credential);
    await expect(fetchOf(hubbed.versionId, hubbed.jobId, credential)).rejects.toThrow(/add the version again with the token/);
  });

  it("leaves a version fetching for a retry when the attempt is not the last", async () => {
    const model = await createModel(db, { actor: operator, input: { name: `retry ${crypto.randomUUID().slice(0, 8)}`, description: "" } });
    const added = await addVersionFromUrl(db, { actor: operator, input: { modelId: model.id, url: `${hub.url}/content/${sha(slowFile)}`, dims: {} } });
    await expect(fetchOf(added.versionId, added.jobId, undefined, { timeoutMs: 300, isLastAttempt: false })).rejects.toThrow(/MAX_DOWNLOAD_TIMEOUT/);
    expect((await db.modelVersion.findUniqueOrThrow({ where: { id: added.versionId } })).status).toBe("fetching");
  });
});
