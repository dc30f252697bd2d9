import crypto from "node:crypto";
import fs from "node:fs";
import { Server, type Locker } from "@tus/server";
import type { Db } from "../db";
import type { OrgActor } from "../auth/roles";
import { isAppError } from "../errors";
import { uploadMetadataSchema } from "./edge.schemas";
import { EpisodeUploadStore, tusRefusal } from "./episode-upload-store";
import { BucketEpisodeUploadStore } from "./bucket-upload-store";
import { handsOverRawEpisodes } from "../datasets/raw-files";
import type { BlobStore } from "../storage/blob-store";
import { alertDiskLow, checkUploadDisk } from "./disk.service";
import { checkRepoTakesEpisodes } from "../datasets/ingest.service";

// Episodes arrive over tus (resumable uploads): one upload per episode, carrying its archive
// (archive-layout.ts). The store unpacks and checks the bytes as they come (episode-upload-store.ts),
// so a cut connection resumes at the last byte received; when the last byte is in, the checked
// files are moved into the repo's raw folder.

export const EDGE_UPLOADS_PATH = "/api/edge/uploads";

export interface EdgeUploadDeps {
  db: Db;
  /** Where partial uploads are kept. */
  tusDir: string;
  /** EDGE_UPLOAD_DIR: its free space decides whether new uploads are taken. */
  uploadRoot: string;
  /** The raw folder of an organisation's repo (EDGE_UPLOAD_DIR/<org id>/<repo_id>). */
  rawDir: (orgId: string, repoId: string) => string;
  maxBytes: number;
  minFreeBytes: number;
  /** With a bucket, uploads in progress are kept in Postgres and the blob store, not in `tusDir` (bucket-upload-store.ts). */
  blobs?: BlobStore;
  /** Locks on uploads shared by every web process (pg-upload-locker.ts); tus's in-memory one when absent. */
  locker?: Locker & { holdIfFree?: <T>(id: string, work: () => Promise<T>) => Promise<T | null> };
}

const tusError = tusRefusal;

export interface EdgeUploadServer {
  /** Answers one tus request from an authenticated caller. */
  handle(request: Request, actor: OrgActor): Promise<Response>;
  /** Whether an upload id names an upload of the caller's organisation (else it is not found). */
  isOwnUpload(uploadId: string, actor: OrgActor): Promise<boolean>;
}

const UPLOAD_ID = /^[0-9a-f]{32}$/;
/** An upload nobody has written to for this long is removed (a new upload sweeps, at most hourly). */
const EXPIRE_AFTER_MS = 24 * 60 * 60 * 1000;
const SWEEP_EVERY_MS = 60 * 60 * 1000;

export function createEdgeUploadServer(deps: EdgeUploadDeps): EdgeUploadServer {
  const folderStore = () => new EpisodeUploadStore({ dir: deps.tusDir, rawDir: deps.rawDir, maxBytes: deps.maxBytes, expireAfterMs: EXPIRE_AFTER_MS });
  const store = handsOverRawEpisodes(deps.blobs) ? new BucketEpisodeUploadStore({ db: deps.db, blobs: deps.blobs, maxBytes: deps.maxBytes, expireAfterMs: EXPIRE_AFTER_MS }) : folderStore();
  // Through a bucket, uploads a folder store began before (in tusDir, their files beside their
  // final names) cannot be resumed; they are swept as the folder store sweeps, after a day.
  const folderLeftovers = !(store instanceof EpisodeUploadStore) && fs.existsSync(deps.tusDir) ? folderStore() : null;
  let lastSweep = 0;
  // The hooks get the request, not who sent it; the route has already checked the caller.
  const actors = new WeakMap<object, OrgActor>();
  const actorOf = (req: object): OrgActor => {
    const actor = actors.get(req);
    if (!actor) throw tusError(401, "Send an API token as `Authorization: Bearer <token>`");
    return actor;
  };

  // Another organisation's upload is as absent as one that never existed.
  async function isOwnUpload(uploadId: string, actor: OrgActor): Promise<boolean> {
    if (!UPLOAD_ID.test(uploadId)) return false;
    const upload = await store.getUpload(uploadId).catch(() => null);
    return upload?.metadata?.orgId === actor.orgId;
  }

  const server = new Server({
    path: EDGE_UPLOADS_PATH,
    datastore: store,
    locker: deps.locker,
    relativeLocation: true,
    maxSize: deps.maxBytes,
    namingFunction: () => crypto.randomBytes(16).toString("hex"),
    async onIncomingRequest(req, uploadId) {
      if (req.method === "POST") return;
      if (!(await isOwnUpload(uploadId, actorOf(req)))) throw tusError(404, "No such upload in this organisation; start the upload again");
    },
    async onUploadCreate(req, upload) {
      const actor = actorOf(req);
      const parsed = uploadMetadataSchema.safeParse(upload.metadata ?? {});
      if (!parsed.success) throw tusError(400, `The upload's metadata is not valid: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`);
      if (upload.size === undefined) throw tusError(400, "Send the archive's length with Upload-Length; deferred lengths are not accepted");
      await checkRepoTakesEpisodes(deps.db, { orgId: actor.orgId, repoId: parsed.data.repoId }).catch((error: unknown) => {
        throw isAppError(error) ? tusError(error.status, error.message) : error;
      });
      // Through a bucket nothing of it is kept on this machine's disk.
      const disk = store instanceof EpisodeUploadStore ? await checkUploadDisk({ dir: deps.uploadRoot, minFreeBytes: deps.minFreeBytes, incomingBytes: upload.size }) : null;
      if (disk?.isRefused) {
        await alertDiskLow(deps.db, { orgId: actor.orgId, message: disk.message }).catch((error) => console.error("Could not raise the low-disk alert", error));
        throw tusError(507, disk.message);
      }
      // Who sent it is recorded by the portal, whatever the client claimed.
      return { metadata: { ...upload.metadata, orgId: actor.orgId, userId: actor.userId } };
    },
    async onUploadFinish(req, upload) {
      try {
        // Checked again: the repo may have become an imported dataset while the bytes came.
        const actor = actorOf(req);
        if (upload.metadata?.orgId !== actor.orgId) throw tusError(404, "No such upload in this organisation; start the upload again");
        await checkRepoTakesEpisodes(deps.db, { orgId: actor.orgId, repoId: String(upload.metadata?.repoId ?? "") });
        await store.commit(upload.id);
        return {};
      } catch (error) {
        if (error && typeof error === "object" && "status_code" in error) throw error;
        if (!isAppError(error)) console.error(`Placing the files of upload ${upload.id} failed`, error);
        throw isAppError(error) ? tusError(error.status, error.message) : tusError(500, "The episode's files could not be put in place on the portal; its log has the details");
      }
    },
  });

  return {
    async handle(request, actor) {
      actors.set(request, actor);
      if (request.method === "POST" && Date.now() - lastSweep > SWEEP_EVERY_MS) {
        lastSweep = Date.now();
        // With the shared locks, an upload a request is writing (on any web process) is left alone.
        const locker = deps.locker;
        const hold = locker?.holdIfFree ? (id: string, work: () => Promise<boolean>) => locker.holdIfFree!(id, work) : undefined;
        store.deleteExpired({ hold }).catch((error) => console.error("Sweeping expired edge uploads failed", error));
        folderLeftovers?.deleteExpired({ hold }).catch((error) => console.error(`Sweeping the edge uploads left in ${deps.tusDir} failed`, error));
      }
      return server.handleWeb(request);
    },
    isOwnUpload,
  };
}
