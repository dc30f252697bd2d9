import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import zlib from "node:zlib";
import tar from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import type { OrgActor } from "../auth/roles";
import { env } from "../env";
import { silentProgress } from "../jobs/progress";
import { exportDataset, unpackUpload } from "./archive.service";
import { runImport, startImport } from "./import.service";
import { findDatasetRoot } from "./lerobot/source";
import { blobStore } from "../storage/blobs";
import { listFiles } from "../storage/blob-files";

const run = promisify(execFile);
const db = testDb();
const FIXTURE = path.resolve("tests/fixtures/so101-record-v3");
let actor: OrgActor;
let tmp: string;
// A datasets folder of this file's own: other test files stage imports in the shared one at the same time.
const settings = () => ({ ...env(), DATASETS_DIR: path.join(tmp, "datasets") });

beforeAll(async () => {
  actor = (await createOrgWithMember(db, "operator")).actor;
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-archives-"));
});
afterAll(async () => {
  await db.$disconnect();
  await fs.rm(tmp, { recursive: true, force: true });
});

async function tarGz(entries: { name: string; body?: string; type?: "file" | "symlink" | "directory"; linkname?: string }[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) pack.entry({ name: e.name, type: e.type ?? "file", linkname: e.linkname }, e.body ?? "");
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack.pipe(zlib.createGzip())) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe("dataset archives", () => {
  it("unpacks a .tar.gz and a .zip of the fixture and imports the upload", async () => {
    const archive = path.join(tmp, "so101.tar.gz");
    await run("tar", ["-czf", archive, "-C", path.dirname(FIXTURE), path.basename(FIXTURE)]);
    const staging = await unpackUpload(Readable.from(await fs.readFile(archive)), settings(), 50 * 1024 ** 2);
    const { root, version } = await findDatasetRoot(path.join(staging, "content"));
    expect(version).toBe("v3.0");
    expect(await listFiles(root)).toEqual(await listFiles(FIXTURE));
    const started = await startImport(db, { actor, repoId: `upload-${Date.now().toString(36)}`, sourceDir: path.join(staging, "content"), removeSource: true, from: "so101.tar.gz", settings: settings() });
    await db.$executeRaw`SELECT graphile_worker.remove_job(${started.jobId}::text)`;
    expect(await runImport(db, { datasetId: started.datasetId, sourceDir: path.join(staging, "content"), removeSource: true, settings: settings(), blobs: blobStore(), progress: silentProgress })).toEqual({ episodes: 4, missingVideos: ["front", "top"], episodesWithoutVideo: [] });
    await expect(fs.stat(staging)).rejects.toThrow();

    const zip = path.join(tmp, "so101.zip");
    await run("python3", ["-c", "import shutil,sys; shutil.make_archive(sys.argv[1], 'zip', sys.argv[2], sys.argv[3])", zip.replace(/\.zip$/, ""), path.dirname(FIXTURE), path.basename(FIXTURE)]);
    const zipStaging = await unpackUpload(Readable.from(await fs.readFile(zip)), settings(), 50 * 1024 ** 2);
    expect(await listFiles(path.join(zipStaging, "content", path.basename(FIXTURE)))).toEqual(await listFiles(FIXTURE));
    expect(await fs.readFile(path.join(zipStaging, "content", path.basename(FIXTURE), "meta/info.json"), "utf8")).toBe(await fs.readFile(path.join(FIXTURE, "meta/info.json"), "utf8"));
    await fs.rm(zipStaging, { recursive: true });

    // Exported: the same files, under the dataset's name, as a .tar.gz.
    const { stream, filename } = await exportDataset(db, { orgId: actor.orgId, datasetId: started.datasetId, settings: settings(), blobs: blobStore() });
    expect(filename).toMatch(/^upload-.*\.tar\.gz$/);
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    const out = path.join(tmp, "export");
    await fs.mkdir(out);
    await fs.writeFile(path.join(tmp, "export.tar.gz"), Buffer.concat(chunks));
    await run("tar", ["-xzf", path.join(tmp, "export.tar.gz"), "-C", out]);
    const [name] = await fs.readdir(out);
    expect(await listFiles(path.join(out, name))).toEqual(["data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/info.json", "meta/stats.json", "meta/tasks.parquet"]);
    expect(JSON.parse(await fs.readFile(path.join(out, name, "meta/info.json"), "utf8"))).toMatchObject({ codebase_version: "v3.0", total_episodes: 4 });
    // The export's snapshot is gone once the stream ended.
    expect((await fs.readdir(path.join(settings().DATASETS_DIR, ".imports"))).length).toBe(0);
  });

  it("refuses entries that leave the folder, links, other formats and archives over the limit", async () => {
    const bad = async (entries: Parameters<typeof tarGz>[0], limit = 1024 ** 2) => unpackUpload(Readable.from(await tarGz(entries)), settings(), limit);
    await expect(bad([{ name: "../evil.txt", body: "x" }])).rejects.toThrow(/climbs out of its folder/);
    await expect(bad([{ name: "/etc/evil", body: "x" }])).rejects.toThrow(/absolute path/);
    await expect(bad([{ name: "ds/link", type: "symlink", linkname: "/etc/passwd" }])).rejects.toThrow(/is a symlink; only files and folders/);
    await expect(bad([{ name: "big.bin", body: "y".repeat(5000) }], 4096)).rejects.toMatchObject({ code: "PAYLOAD_TOO_LARGE" });
    await expect(unpackUpload(Readable.from(Buffer.from("not an archive")), settings(), 1024)).rejects.toThrow(/\.tar\.gz or \.zip/);
    // Damaged zips: an end record cut short, a directory that says it holds more than it does, a file and a folder of one name.
    const zip = async (files: Record<string, string>) => {
      const folder = await fs.mkdtemp(path.join(tmp, "zip-"));
      await run("python3", ["-c", "import zipfile,sys,json\nwith zipfile.ZipFile(sys.argv[1], 'w') as z:\n  for n, b in json.loads(sys.argv[2]).items(): z.writestr(n, b)", path.join(folder, "a.zip"), JSON.stringify(files)]);
      return fs.readFile(path.join(folder, "a.zip"));
    };
    const unzip = (bytes: Buffer) => unpackUpload(Readable.from(bytes), settings(), 1024 ** 2);
    await expect(unzip(Buffer.from("PK\x03\x04PK\x05\x06", "latin1"))).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/end of central directory is damaged/) });
    const good = await zip({ "ds/a.txt": "a", "ds/b.txt": "b" });
    const overcounted = Buffer.from(good);
    overcounted.writeUInt16LE(5, overcounted.length - 22 + 10);
    await expect(unzip(overcounted)).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/central directory is damaged/) });
    await expect(unzip(await zip({ "ds/a": "file", "ds/a/b": "under a file" }))).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/holds entries that clash/) });
    // An empty file is an ordinary entry.
    const withEmpty = await unzip(await zip({ "ds/.keep": "", "ds/a.txt": "a" }));
    expect(await fs.readFile(path.join(withEmpty, "content", "ds", ".keep"), "utf8")).toBe("");
    await fs.rm(withEmpty, { recursive: true });
    await fs.stat(path.join(os.tmpdir(), "evil.txt")).then(() => expect.fail("escaped"), () => {});
    expect((await fs.readdir(path.join(settings().DATASETS_DIR, ".imports"))).length).toBe(0);
  });
});
