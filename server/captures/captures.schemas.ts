import { z } from "zod";
import { sha256Schema } from "../storage/blob-store";
import { epochMsSchema } from "../hardware/hardware.schemas";
import { INT_COLUMN_MAX } from "../db/limits";

// Live capture: sessions (tRPC and the portal's pages), the trainer protocol (route handlers
// under /api/captures/<id>/, camelCase JSON) and the earlier system's endpoints (snake_case,
// their own shapes). Times in the trainer protocol are milliseconds since the epoch.

export const captureStatusSchema = z.enum(["active", "stopped"]);

/** An SO-100/SO-101 arm has six joints (the gripper counts as one). */
export const JOINT_COUNT = 6;

export const jointAnglesSchema = z
  .array(z.number().finite(), { error: `joint_angles must be a list of ${JOINT_COUNT} numbers (radians)` })
  .length(JOINT_COUNT, `joint_angles must hold exactly ${JOINT_COUNT} angles, one per joint (the gripper included)`)
  .refine((angles) => angles.every((a) => Math.abs(a) <= 2 * Math.PI), {
    message: "joint angles are radians, each within ±2π; values this large look like degrees — multiply by π/180",
  });

/** A count the trainer reports (an iteration, splats, a generation): at most what its Int column holds. */
const countSchema = z.number().int().min(0).max(INT_COLUMN_MAX);

export const createCaptureInput = z.object({
  name: z.string().trim().min(1, "Name the session, e.g. after the scene").max(120),
  chunkSize: z.number().int().min(1).max(1000).default(50),
  robotId: z.uuid().nullable().default(null),
});

export const sessionIdInput = z.object({ sessionId: z.uuid() });

export const trainerLeaseStates = ["none", "active", "silent"] as const;

export const trainerLeaseSchema = z.object({
  /** none: no trainer has claimed it; active: heard from within CAPTURE_TRAINER_SILENT_MS; silent: not since. */
  state: z.enum(trainerLeaseStates),
  name: z.string().nullable(),
  claimedAt: z.date().nullable(),
  lastSeenAt: z.date().nullable(),
  iteration: z.number().int().nullable(),
  gaussians: z.number().int().nullable(),
  progress: z.number().nullable(),
});

export const boundsSchema = z.object({ min: z.tuple([z.number(), z.number(), z.number()]), max: z.tuple([z.number(), z.number(), z.number()]) });

export const captureSnapshotSchema = z.object({
  id: z.uuid(),
  sessionId: z.uuid(),
  iteration: z.number().int(),
  /** What the trainer sent; the SPZ is always there. */
  format: z.enum(["ply", "spz"]),
  splats: z.number().int(),
  shDegree: z.number().int(),
  sourceSha256: sha256Schema,
  sourceBytes: z.number().int(),
  spzSha256: sha256Schema,
  spzBytes: z.number().int(),
  bounds: boundsSchema,
  trainerName: z.string(),
  /** The session's newest frame and its frame count when the snapshot was pushed. */
  lastSeq: z.number().int(),
  frameCount: z.number().int(),
  createdAt: z.date(),
  /** Paths on the portal (ETag, Range, immutable caching). */
  spzUrl: z.string(),
  plyUrl: z.string(),
});

export const jointStateSchema = z.object({ t: z.number(), angles: z.array(z.number()) });

export const captureSessionSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  status: captureStatusSchema,
  chunkSize: z.number().int(),
  robotId: z.uuid().nullable(),
  robotName: z.string().nullable(),
  generation: z.number().int(),
  lastSeq: z.number().int(),
  frameCount: z.number().int(),
  chunkCount: z.number().int(),
  snapshotCount: z.number().int(),
  trainer: trainerLeaseSchema,
  createdBy: z.string(),
  createdAt: z.date(),
  stoppedAt: z.date().nullable(),
});

const vec3 = z.tuple([z.number().finite(), z.number().finite(), z.number().finite()]);

/**
 * The capture camera: where it is and how it sees, in the scene's own axes (the PLY's; 3DGS
 * trainers use OpenCV's: x right, y down, z forward). `position` and `rotation` are the camera
 * to the scene (camera-to-world, as COLMAP's inverse and gsplat's `camtoworlds`), the rotation a
 * unit quaternion [x, y, z, w] (normalised on arrival); the intrinsics are a pinhole's, in pixels
 * of a `width` × `height` image.
 */
export const cameraSchema = z
  .object({
    position: vec3.refine((p) => p.every((v) => Math.abs(v) <= 2048), "camera position must be within ±2048 (metres in the scene's axes)"),
    rotation: z
      .tuple([z.number().finite(), z.number().finite(), z.number().finite(), z.number().finite()])
      .refine((q) => Math.hypot(...q) > 1e-6, "camera rotation must be a quaternion [x, y, z, w] of non-zero length")
      .transform((q) => {
        const n = Math.hypot(...q);
        return q.map((v) => v / n) as [number, number, number, number];
      }),
    fx: z.number().finite().positive("fx is the focal length in pixels and must be positive"),
    fy: z.number().finite().positive("fy is the focal length in pixels and must be positive"),
    cx: z.number().finite(),
    cy: z.number().finite(),
    width: z.number().int().min(1).max(16384),
    height: z.number().int().min(1).max(16384),
  })
  .strict();
export type Camera = z.output<typeof cameraSchema>;

/** The bound arm's live-joints command while the session follows it. */
export const liveJointsSchema = z.object({ commandId: z.uuid(), status: z.string() });

/** One session with what a page showing it needs: the newest snapshot (its SPZ URL), the latest pose, the arm's live stream and the camera. */
export const captureSessionDetailSchema = captureSessionSchema.extend({
  latestSnapshot: captureSnapshotSchema.nullable(),
  latestJoints: jointStateSchema.nullable(),
  live: liveJointsSchema.nullable(),
  camera: cameraSchema.nullable(),
});

export const captureChunkSchema = z.object({
  index: z.number().int(),
  firstSeq: z.number().int(),
  lastSeq: z.number().int(),
  frameCount: z.number().int(),
  sha256: sha256Schema,
  bytes: z.number().int(),
  createdAt: z.date(),
});

export const listSnapshotsInput = z.object({
  sessionId: z.uuid(),
  limit: z.number().int().min(1).max(500).default(100),
  /** Older than this snapshot (paging back through the timeline). */
  before: z.uuid().optional(),
});

// --- The trainer protocol ------------------------------------------------------------------

export const trainerNameSchema = z
  .string()
  .trim()
  .min(1, "Name the trainer (e.g. the GPU host it runs on)")
  .max(80)
  .regex(/^[\w .@:/-]+$/, "may hold letters, digits, spaces and . _ - @ : / only");

export const claimInput = z.object({ trainer: trainerNameSchema });

export const heartbeatInput = z.object({
  claimId: z.uuid(),
  iteration: countSchema,
  gaussians: countSchema,
  progress: z.number().min(0).max(1).optional(),
});

export const releaseInput = z.object({ claimId: z.uuid() });

export const leaseAnswerSchema = z.object({
  claimId: z.uuid(),
  sessionId: z.uuid(),
  status: captureStatusSchema,
  generation: z.number().int(),
  lastSeq: z.number().int(),
  frameCount: z.number().int(),
  /** Send a heartbeat well before this (ISO time), or another trainer may take the session. */
  expiresAt: z.string(),
  silentAfterMs: z.number().int(),
});

export const framesQuery = z.object({
  after: z.coerce.number().int().min(0).default(0),
  /** Seconds to wait for a frame when there is none after the cursor (long poll), at most 25. */
  wait: z.coerce.number().min(0).max(25).default(0),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

/** `camera=` in a query: the camera as URL-encoded JSON. */
export const cameraParamSchema = z
  .string()
  .max(2048, "is at most 2 KB of JSON")
  .transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: "custom", message: "must be URL-encoded JSON: {position: [x, y, z], rotation: [x, y, z, w], fx, fy, cx, cy, width, height}" });
      return z.NEVER;
    }
  })
  .pipe(cameraSchema);

export const frameQuery = z.object({ t: z.coerce.number().pipe(epochMsSchema).optional(), camera: cameraParamSchema.optional() });

export const frameInfoSchema = z.object({
  seq: z.number().int(),
  sha256: sha256Schema,
  bytes: z.number().int(),
  format: z.enum(["jpeg", "png"]),
  width: z.number().int(),
  height: z.number().int(),
  /** When the frame was taken (ms since the epoch). */
  t: z.number(),
  /** The posted joint state nearest the frame in time, among those stored when it was read (the camera's pose, through the arm's kinematics). */
  joints: jointStateSchema.nullable(),
  /** Its bytes: GET this path on the portal with the same token. */
  url: z.string(),
});

export const framesPageSchema = z.object({
  sessionId: z.uuid(),
  status: captureStatusSchema,
  /** Changes on every reset: frames before it are gone, start training over. */
  generation: z.number().int(),
  frames: z.array(frameInfoSchema),
  /** Pass as `after` next time: the last frame returned, or `after` again when none came. */
  cursor: z.number().int(),
  lastSeq: z.number().int(),
});

export const frameReceiptSchema = z.object({
  sessionId: z.uuid(),
  seq: z.number().int(),
  sha256: sha256Schema,
  format: z.enum(["jpeg", "png"]),
  width: z.number().int(),
  height: z.number().int(),
  frameCount: z.number().int(),
  chunkCount: z.number().int(),
});

export const postJointsInput = z.object({ joint_angles: jointAnglesSchema, t: epochMsSchema.optional() });

export const snapshotQuery = z.object({ claimId: z.uuid(), iteration: z.coerce.number().pipe(countSchema), camera: cameraParamSchema.optional() });

/** The JSON blob written every chunkSize frames. */
export const chunkManifestSchema = z.object({
  format: z.literal("gantry-capture-chunk/1"),
  sessionId: z.uuid(),
  generation: z.number().int(),
  index: z.number().int(),
  frames: z.array(
    z.object({
      seq: z.number().int(),
      sha256: sha256Schema,
      bytes: z.number().int(),
      format: z.enum(["jpeg", "png"]),
      width: z.number().int(),
      height: z.number().int(),
      t: z.number(),
      /** The posted joint state nearest in time to the frame, if any. */
      joints: jointStateSchema.nullable(),
    }),
  ),
});
export type ChunkManifest = z.infer<typeof chunkManifestSchema>;

// --- The earlier system's endpoints ---------------------------------------------------------

export const compatJointAnglesInput = z.object({ joint_angles: jointAnglesSchema });

/** `GET /api/captures/{id}/snapshots`: newest first, `before` a snapshot to page back. */
export const snapshotListQuery = z.object({ limit: z.coerce.number().int().min(1).max(500).default(100), before: z.uuid().optional() });
/** `POST /api/captures/{id}/snapshots`: the lease, and the generation it was trained on (refused when the session was reset since). */
export const snapshotPushQuery = snapshotQuery.extend({ generation: z.coerce.number().pipe(countSchema).optional() });

/** A snapshot's file in the URL: `<snapshot id>.spz` or `<snapshot id>.ply`. */
export const SNAPSHOT_FILE = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(spz|ply)$/i;
export const snapshotFileSchema = z.string().regex(SNAPSHOT_FILE, "ask for <snapshot id>.spz or <snapshot id>.ply");
