import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { testDb } from "../../../tests/helpers/db";
import { createOrgWithMember } from "../../../tests/helpers/factories";
import type { OrgActor } from "../../auth/roles";
import { createApiToken } from "../../auth/tokens.service";
import { createCaptureInput } from "../../captures/captures.schemas";
import { createCaptureSession } from "../../captures/sessions.service";
import { uploadMetadataSchema } from "../../edge/edge.schemas";
import { createModel } from "../../models/registry.service";
import { apiRoutes } from "./api-routes";
import { buildOpenApiDocument } from "./document";
import { toParameters } from "./json-schema";
import type { ApiRoute, Method } from "./registry";

// The API reference against the code: every route handler under app/api is in it, every
// example fits the schemas the handler parses with, and a representative set of examples is
// sent to the real handlers, against the test database, whose answers must fit the document.

const db = testDb();
const appDir = path.resolve("app");
const METHODS: Method[] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
/** Described elsewhere: tRPC by its typed client (docs/api.md), next-auth by its own docs. */
const UNDOCUMENTED = new Set(["api/trpc/[trpc]", "api/auth/[...nextauth]"]);

type Handler = (request: Request, ctx: { params: Promise<Record<string, string | string[]>> }) => Promise<Response> | Response;

function routeDirs(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? routeDirs(path.join(dir, e.name)) : e.name === "route.ts" ? [path.relative(appDir, dir).split(path.sep).join("/")] : []));
}

const importRoute = (handler: string) => import(path.join(appDir, handler, "route.ts")) as Promise<Partial<Record<Method | "OPTIONS", Handler>>>;
const pathNames = (p: string) => [...p.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
const find = (operationId: string) => apiRoutes.find((r) => r.operationId === operationId)!;

describe("the API reference covers every route handler", () => {
  const dirs = routeDirs(path.join(appDir, "api"));

  it("finds the route handlers", () => {
    expect(dirs).toContain("api/jobs/[id]/events");
    expect(dirs).toContain("api/compat/edge/upload-complete");
  });

  it.each(dirs.filter((d) => !UNDOCUMENTED.has(d)))("documents each method app/%s/route.ts exports", async (dir) => {
    const mod = await importRoute(dir);
    const exported = METHODS.filter((m) => typeof mod[m] === "function");
    expect(exported.length, `${dir} exports no handler`).toBeGreaterThan(0);
    const documented = apiRoutes.filter((r) => r.handler === dir).map((r) => r.method);
    expect(documented.sort(), `the API reference's entries for app/${dir}/route.ts`).toEqual(exported.sort());
    expect(typeof mod.OPTIONS, `${dir} exports OPTIONS, which the reference does not describe`).toBe("undefined");
  });

  it("has no entry without its handler", async () => {
    for (const route of apiRoutes) {
      expect(fs.existsSync(path.join(appDir, route.handler, "route.ts")), `${route.operationId}: app/${route.handler}/route.ts`).toBe(true);
      expect(typeof (await importRoute(route.handler))[route.method], `${route.operationId}: ${route.method} in app/${route.handler}`).toBe("function");
    }
  });

  it("names the same path parameters as the handler's folder, in order", () => {
    for (const route of apiRoutes) {
      const folderParams = [...route.handler.matchAll(/\[(?:\.\.\.)?(\w+)\]/g)].map((m) => m[1]);
      expect(pathNames(route.path), route.operationId).toEqual(folderParams);
      expect(Object.keys(route.params?.shape ?? {}), route.operationId).toEqual(folderParams);
    }
  });
});

describe("the examples", () => {
  it.each(apiRoutes.map((r) => [`${r.method} ${r.path}`, r] as const))("%s: the example fits the route's schemas", (_name, route) => {
    const { example } = route;
    expect(Object.keys(example.params ?? {}).sort()).toEqual(pathNames(route.path).sort());
    if (route.params) expect(route.params.safeParse(example.params).error?.issues ?? []).toEqual([]);

    const declared = (schema: z.ZodType | undefined, where: "query" | "header") => (schema ? toParameters(schema, where).map((p) => p.name as string) : []);
    for (const key of Object.keys(example.query ?? {})) expect(declared(route.query, "query"), `${route.operationId}: query ${key}`).toContain(key);
    for (const key of Object.keys(example.headers ?? {})) expect(declared(route.headers, "header"), `${route.operationId}: header ${key}`).toContain(key);
    if (route.query) expect(route.query.safeParse(example.query ?? {}).error?.issues ?? []).toEqual([]);
    if (route.headers) expect(route.headers.safeParse(example.headers ?? {}).error?.issues ?? []).toEqual([]);

    const body = route.body;
    if (!body) expect(example.body).toBeUndefined();
    else if (body.kind === "json") {
      if (example.body !== undefined || !body.optional) expect(body.schema.safeParse(example.body).error?.issues ?? []).toEqual([]);
    } else expect(typeof example.body, `${route.operationId}: say what bytes to send`).toBe("string");
  });

  it("the episode upload's metadata is what the upload server reads", () => {
    const header = find("startEpisodeUpload").example.headers!["upload-metadata"];
    const metadata = Object.fromEntries(header.split(",").map((pair) => pair.split(" ")).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
    expect(uploadMetadataSchema.safeParse(metadata).error?.issues ?? []).toEqual([]);
  });
});

describe("the document", () => {
  const doc = buildOpenApiDocument() as { openapi: string; paths: Record<string, Record<string, Record<string, unknown>>>; components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> } };

  it("is OpenAPI 3.1 with unique operation ids and a response for every operation", () => {
    expect(doc.openapi).toBe("3.1.0");
    const ids = Object.values(doc.paths).flatMap((item) => Object.values(item).map((op) => op.operationId as string));
    expect(ids.length).toBe(apiRoutes.length);
    expect(new Set(ids).size).toBe(ids.length);
    for (const [p, item] of Object.entries(doc.paths)) {
      expect(p.startsWith("/"), p).toBe(true);
      for (const [method, op] of Object.entries(item)) {
        expect(["get", "post", "put", "patch", "delete", "head"]).toContain(method);
        expect(Object.keys(op.responses as object).length, `${method} ${p}`).toBeGreaterThan(0);
        for (const status of Object.keys(op.responses as object)) expect(status, `${method} ${p}`).toMatch(/^[1-5]\d\d$/);
        const inPath = (op.parameters as { name: string; in: string }[] | undefined)?.filter((x) => x.in === "path").map((x) => x.name) ?? [];
        expect(inPath.sort(), `${method} ${p}: path parameters`).toEqual(pathNames(p).sort());
        for (const scheme of (op.security as Record<string, unknown>[]).flatMap((s) => Object.keys(s))) expect(doc.components.securitySchemes).toHaveProperty(scheme);
      }
    }
  });

  it("resolves every $ref", () => {
    const refs: string[] = [];
    (function walk(value: unknown) {
      if (Array.isArray(value)) return value.forEach(walk);
      if (value === null || typeof value !== "object") return;
      for (const [k, v] of Object.entries(value)) {
        if (k === "$ref" && typeof v === "string") refs.push(v);
        else walk(v);
      }
    })(doc);
    expect(refs.length).toBeGreaterThan(20);
    for (const ref of refs) {
      expect(ref, "a local reference").toMatch(/^#\//);
      let target: unknown = doc;
      for (const part of ref.slice(2).split("/")) target = (target as Record<string, unknown> | undefined)?.[part.replace(/~1/g, "/").replace(/~0/g, "~")];
      expect(target, ref).toBeTypeOf("object");
    }
  });

  it("is served at /api/openapi.json, to anyone, with an ETag", async () => {
    const { GET } = await import("../../../app/api/openapi.json/route");
    const res = GET(new Request("http://localhost/api/openapi.json"));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(doc)));
    const again = GET(new Request("http://localhost/api/openapi.json", { headers: { "if-none-match": res.headers.get("etag")! } }));
    expect(again.status).toBe(304);
  });
});

describe("the examples, sent to the real handlers", () => {
  let owner: OrgActor;
  let token: string;
  let sessionId: string;
  let modelId: string;

  beforeAll(async () => {
    ({ owner } = await createOrgWithMember(db, "owner"));
    token = (await createApiToken(db, { actor: owner, input: { name: "reference examples", scopes: ["admin"] } })).token;
    sessionId = (await createCaptureSession(db, { actor: owner, input: createCaptureInput.parse({ name: "Reference examples" }) })).id;
    modelId = (await createModel(db, { actor: owner, input: { name: `reference-${owner.orgId.slice(0, 8)}`, description: "" } })).id;
    await db.dataset.create({ data: { orgId: owner.orgId, repoId: "lab/pick-cube", buildId: `reference-${owner.orgId.slice(0, 8)}` } });
  });

  /** Sends a route's example (with real ids, and `overrides`), as an API token client would. */
  async function send(route: ApiRoute, overrides: { params?: Record<string, string>; query?: Record<string, string>; body?: unknown } = {}) {
    const params = { ...route.example.params, ...overrides.params };
    const query = new URLSearchParams({ ...route.example.query, ...overrides.query });
    const url = `http://localhost${route.path.replace(/\{(\w+)\}/g, (_m, name: string) => params[name])}${query.size ? `?${query}` : ""}`;
    const body = "body" in overrides ? overrides.body : route.example.body;
    const headers = new Headers({ ...route.example.headers, authorization: `Bearer ${token}` });
    if (body !== undefined) headers.set("content-type", "application/json");
    const handler = (await importRoute(route.handler))[route.method]!;
    const routeParams = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, route.handler.includes(`[...${k}]`) ? v.split("/") : v]));
    const response = await handler(new Request(url, { method: route.method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) }), { params: Promise.resolve(routeParams) });
    const json = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
    return { status: response.status, json };
  }

  /** Dates travel as ISO strings; the answer's schema describes them as Dates. */
  const revive = (value: unknown): unknown =>
    typeof value === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(value) ? new Date(value) : Array.isArray(value) ? value.map(revive) : value && typeof value === "object" ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(v)])) : value;

  /** The answer is one the route documents, and fits its schema when it names one. */
  function expectDocumented(route: ApiRoute, answer: { status: number; json: unknown }) {
    const spec = route.responses.find((r) => r.status === answer.status);
    expect(spec, `${route.operationId} answered ${answer.status}: ${JSON.stringify(answer.json)}`).toBeDefined();
    if (!spec?.json) return;
    const raw = spec.json.schema.safeParse(answer.json);
    if (!raw.success) expect(spec.json.schema.safeParse(revive(answer.json)).error?.issues ?? [], `${route.operationId}'s answer`).toEqual([]);
  }

  it("takes the examples of the system, edge and databench routes", async () => {
    for (const id of ["getHealth", "getAgentSession", "getEpisodeState", "databenchMetrics", "compatEdgeStatus", "compatListDevices"]) {
      const route = find(id);
      const answer = await send(route);
      expect(answer.status, `${id}: ${JSON.stringify(answer.json)}`).toBeLessThan(id === "getHealth" ? 600 : 300);
      expectDocumented(route, answer);
    }
  });

  it("takes the example device, and lists it without its password", async () => {
    const added = await send(find("compatAddDevice"));
    expectDocumented(find("compatAddDevice"), added);
    const listed = await send(find("compatListDevices"));
    expect(JSON.stringify(listed.json)).toContain("jetson-3");
    expect(JSON.stringify(listed.json)).not.toContain("a password of the device's");
  });

  it("takes the trainer protocol's examples: claim, heartbeat, frames, joints, snapshots, release", async () => {
    const params = { id: sessionId };
    const claim = await send(find("claimCapture"), { params });
    expectDocumented(find("claimCapture"), claim);
    const claimId = (claim.json as { claimId: string }).claimId;
    expectDocumented(find("heartbeatCapture"), await send(find("heartbeatCapture"), { params, body: { ...(find("heartbeatCapture").example.body as object), claimId } }));
    // No frame has come: answer at once rather than wait the example's seconds for one.
    expectDocumented(find("listCaptureFrames"), await send(find("listCaptureFrames"), { params, query: { wait: "0" } }));
    expectDocumented(find("postCaptureJoints"), await send(find("postCaptureJoints"), { params }));
    const joints = await send(find("getCaptureJoints"), { params });
    expectDocumented(find("getCaptureJoints"), joints);
    expect((joints.json as { angles: number[] }).angles).toEqual((find("postCaptureJoints").example.body as { joint_angles: number[] }).joint_angles);
    expectDocumented(find("listCaptureSnapshots"), await send(find("listCaptureSnapshots"), { params }));
    expectDocumented(find("releaseCapture"), await send(find("releaseCapture"), { params, body: { claimId } }));
  });

  it("takes the resumable model upload's examples: start, status, cancel", async () => {
    const started = await send(find("startModelUpload"), { params: { modelId } });
    expectDocumented(find("startModelUpload"), started);
    const uploadId = (started.json as { uploadId: string }).uploadId;
    const status = await send(find("getModelUpload"), { params: { modelId, uploadId } });
    expectDocumented(find("getModelUpload"), status);
    expect(status.json).toMatchObject({ received: 0, total: 104857600 });
    expectDocumented(find("cancelModelUpload"), await send(find("cancelModelUpload"), { params: { modelId, uploadId } }));
  });

  it("refuses as documented: no token is a 401 with the error body", async () => {
    const route = find("getAgentSession");
    const handler = (await importRoute(route.handler)).GET!;
    const res = await handler(new Request("http://localhost/api/edge/session"), { params: Promise.resolve({}) });
    expect(res.status).toBe(401);
    expect(route.errors).toContain("UNAUTHORIZED");
    const body = await res.json();
    const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
    expect(errorSchema.safeParse(body).success).toBe(true);
  });
});
