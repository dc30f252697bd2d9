import http from "node:http";
import { Readable } from "node:stream";
import * as uploads from "@/app/api/edge/uploads/route";
import * as upload from "@/app/api/edge/uploads/[uploadId]/route";
import * as episodes from "@/app/api/edge/episodes/route";
import * as session from "@/app/api/edge/session/route";
import * as uploadComplete from "@/app/api/compat/edge/upload-complete/route";
import * as status from "@/app/api/compat/edge/status/[...repoId]/route";
import * as pullManifest from "@/app/api/edge/models/[...ref]/route";
import * as versionFile from "@/app/api/models/versions/[versionId]/files/[...path]/route";
import * as agentConnect from "@/app/api/agents/connect/route";
import * as agentMessages from "@/app/api/agents/messages/route";
import * as agentSamples from "@/app/api/agents/commands/[commandId]/samples/route";
import * as plugplaySystemInfo from "@/app/api/plugplay/system-info/route";
import * as plugplayListPorts from "@/app/api/plugplay/list-ports/route";
import * as plugplaySavePortConfig from "@/app/api/plugplay/save-port-config/route";
import * as plugplayStartInstallation from "@/app/api/plugplay/start-installation/route";
import * as plugplayInstallationStatus from "@/app/api/plugplay/installation-status/route";
import * as plugplayCancelInstallation from "@/app/api/plugplay/cancel-installation/route";

import * as captureFrames from "@/app/api/captures/[id]/frames/route";
import * as captureFrame from "@/app/api/captures/[id]/frames/[seq]/route";
import * as captureChunk from "@/app/api/captures/[id]/chunks/[index]/route";
import * as captureJoints from "@/app/api/captures/[id]/joints/route";
import * as captureClaim from "@/app/api/captures/[id]/claim/route";
import * as captureHeartbeat from "@/app/api/captures/[id]/heartbeat/route";
import * as captureRelease from "@/app/api/captures/[id]/release/route";
import * as captureSnapshots from "@/app/api/captures/[id]/snapshots/route";
import * as captureSnapshotFile from "@/app/api/captures/[id]/snapshots/[file]/route";
import * as uploadFrame from "@/app/api/compat/capture/upload-frame/route";
import * as updateJointAngles from "@/app/api/compat/capture/update-joint-angles/route";
import * as captureStatus from "@/app/api/compat/capture/status/route";
import * as getPly from "@/app/api/compat/capture/get-ply/route";
import * as stopTraining from "@/app/api/compat/capture/stop-training/route";
import * as captureReset from "@/app/api/compat/capture/reset/route";
import * as captureHealth from "@/app/api/compat/capture/health/route";
import * as trpc from "@/app/api/trpc/[trpc]/route";


// The edge, agent and capture routes served by a plain Node HTTP server, for tests and the
// benchmarks: the real route handlers, without building the whole portal. Prints "listening <port>" when ready.
// Settings come from the environment, as for the portal.

type Handler = (request: Request, ctx: { params: Promise<Record<string, unknown>> }) => Promise<Response>;

function route(method: string, pathname: string): { handler: Handler; params: Record<string, unknown> } | null {
  const table: [string, RegExp, Record<string, Handler | undefined>, (m: RegExpExecArray) => Record<string, unknown>][] = [
    ["uploads", /^\/api\/edge\/uploads\/?$/, uploads as unknown as Record<string, Handler>, () => ({})],
    ["upload", /^\/api\/edge\/uploads\/([^/]+)$/, upload as unknown as Record<string, Handler>, (m) => ({ uploadId: decodeURIComponent(m[1]) })],
    ["episodes", /^\/api\/edge\/episodes$/, episodes as unknown as Record<string, Handler>, () => ({})],
    ["session", /^\/api\/edge\/session$/, session as unknown as Record<string, Handler>, () => ({})],
    ["models", /^\/api\/edge\/models\/(.+)$/, pullManifest as unknown as Record<string, Handler>, (m) => ({ ref: m[1].split("/").map(decodeURIComponent) })],
    ["version-file", /^\/api\/models\/versions\/([^/]+)\/files\/(.+)$/, versionFile as unknown as Record<string, Handler>, (m) => ({ versionId: decodeURIComponent(m[1]), path: m[2].split("/").map(decodeURIComponent) })],
    ["agent-connect", /^\/api\/agents\/connect$/, agentConnect as unknown as Record<string, Handler>, () => ({})],
    ["agent-messages", /^\/api\/agents\/messages$/, agentMessages as unknown as Record<string, Handler>, () => ({})],
    ["agent-samples", /^\/api\/agents\/commands\/([^/]+)\/samples$/, agentSamples as unknown as Record<string, Handler>, (m) => ({ commandId: decodeURIComponent(m[1]) })],
    ["plugplay-system-info", /^\/api\/plugplay\/system-info$/, plugplaySystemInfo as unknown as Record<string, Handler>, () => ({})],
    ["plugplay-list-ports", /^\/api\/plugplay\/list-ports$/, plugplayListPorts as unknown as Record<string, Handler>, () => ({})],
    ["plugplay-save-port-config", /^\/api\/plugplay\/save-port-config$/, plugplaySavePortConfig as unknown as Record<string, Handler>, () => ({})],
    ["plugplay-start-installation", /^\/api\/plugplay\/start-installation$/, plugplayStartInstallation as unknown as Record<string, Handler>, () => ({})],
    ["plugplay-installation-status", /^\/api\/plugplay\/installation-status$/, plugplayInstallationStatus as unknown as Record<string, Handler>, () => ({})],
    ["plugplay-cancel-installation", /^\/api\/plugplay\/cancel-installation$/, plugplayCancelInstallation as unknown as Record<string, Handler>, () => ({})],
    // next.config.ts rewrites /edge/* to /api/compat/edge/*.
    ["upload-complete", /^\/edge\/upload-complete$/, uploadComplete as unknown as Record<string, Handler>, () => ({})],
    ["status", /^\/edge\/status\/(.+)$/, status as unknown as Record<string, Handler>, (m) => ({ repoId: m[1].split("/").map(decodeURIComponent) })],
    ["capture-frames", /^\/api\/captures\/([^/]+)\/frames$/, captureFrames as unknown as Record<string, Handler>, (m) => ({ id: decodeURIComponent(m[1]) })],
    ["capture-frame", /^\/api\/captures\/([^/]+)\/frames\/([^/]+)$/, captureFrame as unknown as Record<string, Handler>, (m) => ({ id: decodeURIComponent(m[1]), seq: decodeURIComponent(m[2]) })],
    ["capture-chunk", /^\/api\/captures\/([^/]+)\/chunks\/([^/]+)$/, captureChunk as unknown as Record<string, Handler>, (m) => ({ id: decodeURIComponent(m[1]), index: decodeURIComponent(m[2]) })],
    ["capture-joints", /^\/api\/captures\/([^/]+)\/joints$/, captureJoints as unknown as Record<string, Handler>, (m) => ({ id: decodeURIComponent(m[1]) })],
    ["capture-claim", /^\/api\/captures\/([^/]+)\/claim$/, captureClaim as unknown as Record<string, Handler>, (m) => ({ id: decodeURIComponent(m[1]) })],
    ["capture-heartbeat", /^\/api\/captures\/([^/]+)\/heartbeat$/, captureHeartbeat as unknown as Record<string, Handler>, (m) => ({ id: decodeURIComponent(m[1]) })],
    ["capture-release", /^\/api\/captures\/([^/]+)\/release$/, captureRelease as unknown as Record<string, Handler>, (m) => ({ id: decodeURIComponent(m[1]) })],
    ["capture-snapshots", /^\/api\/captures\/([^/]+)\/snapshots$/, captureSnapshots as unknown as Record<string, Handler>, (m) => ({ id: decodeURIComponent(m[1]) })],
    ["capture-snapshot-file", /^\/api\/captures\/([^/]+)\/snapshots\/([^/]+)$/, captureSnapshotFile as unknown as Record<string, Handler>, (m) => ({ id: decodeURIComponent(m[1]), file: decodeURIComponent(m[2]) })],
    // next.config.ts rewrites these (/status and /health only with a bearer token) to /api/compat/capture/*.
    ["upload-frame", /^\/upload-frame$/, uploadFrame as unknown as Record<string, Handler>, () => ({})],
    ["update-joint-angles", /^\/update-joint-angles$/, updateJointAngles as unknown as Record<string, Handler>, () => ({})],
    ["capture-status", /^\/status$/, captureStatus as unknown as Record<string, Handler>, () => ({})],
    ["get-ply", /^\/get-ply$/, getPly as unknown as Record<string, Handler>, () => ({})],
    ["stop-training", /^\/stop-training$/, stopTraining as unknown as Record<string, Handler>, () => ({})],
    ["reset", /^\/reset$/, captureReset as unknown as Record<string, Handler>, () => ({})],
    // The typed client's procedures (the benchmarks' browser subscribes to a capture's joints).
    ["trpc", /^\/api\/trpc\/([^/]+)$/, trpc as unknown as Record<string, Handler>, (m) => ({ trpc: decodeURIComponent(m[1]) })],
    ["capture-health", /^\/health$/, captureHealth as unknown as Record<string, Handler>, () => ({})],
  ];
  for (const [, re, mod, params] of table) {
    const m = re.exec(pathname);
    if (m && mod[method]) return { handler: mod[method]!, params: params(m) };
  }
  return null;
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "127.0.0.1"}`);
    const found = route(req.method ?? "GET", url.pathname);
    if (!found) {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "NOT_FOUND", message: `No route ${req.method} ${url.pathname}` } }));
      return;
    }
    const hasBody = req.method !== "GET" && req.method !== "HEAD";
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(", ") : v);
    // Aborted when the client goes away, as Next does: a held stream (an agent's) must notice.
    const gone = new AbortController();
    res.on("close", () => gone.abort());
    const request = new Request(url, { method: req.method, headers, signal: gone.signal, ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream, duplex: "half" } : {}) } as RequestInit);
    const response = await found.handler(request, { params: Promise.resolve(found.params) });
    res.writeHead(response.status, Object.fromEntries(response.headers));
    if (response.body && req.method !== "HEAD") Readable.fromWeb(response.body as never).pipe(res);
    else res.end();
  } catch (error) {
    console.error(error);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  }
});

server.listen(Number(process.env.TEST_PORTAL_PORT ?? 0), "127.0.0.1", () => {
  const address = server.address();
  console.log(`listening ${typeof address === "object" && address ? address.port : 0}`);
});
