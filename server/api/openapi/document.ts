import { createHash } from "node:crypto";
import { z } from "zod";
import { errorCodes, httpStatus, type ErrorCode } from "../../errors";
import { toJsonSchema, toParameters, type JsonSchema } from "./json-schema";
import { areas, type ApiRoute, type NamedSchema, type ResponseSpec } from "./registry";
import { apiRoutes } from "./api-routes";

/** Every error answer of the route handlers (server/errors.ts). */
export const errorBodySchema = z.object({ error: z.object({ code: z.enum(errorCodes), message: z.string() }) });

/** What each error answer means here; its status is the one the handlers send (server/errors.ts). */
const errorMeaning: Record<ErrorCode, string> = {
  BAD_REQUEST: "The request is not valid; the message names each bad field",
  UNAUTHORIZED: "No session or API token, or a token that is revoked, expired or malformed",
  FORBIDDEN: "The caller's role is too low, or a signed-in change came from another site",
  NOT_FOUND: "No such thing in the caller's organisation",
  CONFLICT: "The state does not allow it now (the message says why)",
  PAYLOAD_TOO_LARGE: "The body is larger than the limit the message names",
  UNSUPPORTED_MEDIA_TYPE: "The body's Content-Type is not one this route takes",
  RATE_LIMITED: "Too many requests; wait and try again",
  INTERNAL: "Something failed on the server; its log has the details",
};
const errorStatus = Object.fromEntries(errorCodes.map((code) => [code, { status: httpStatus[code], description: errorMeaning[code] }])) as Record<ErrorCode, { status: number; description: string }>;

const authText = {
  none: "No credentials.",
  member: (role: string) => `A member with the ${role} role or higher: the session cookie, or an API token (\`Authorization: Bearer <token>\`).`,
  token: (role: string) => `An API token (\`Authorization: Bearer <token>\`) of a member with the ${role} role or higher; without one this path is a portal page.`,
  instance: "The instance's operators: METRICS_TOKEN as `Authorization: Bearer <token>`, or an instance admin (INSTANCE_ADMINS) by session cookie or API token.",
};

class Components {
  readonly schemas: Record<string, JsonSchema> = {};
  private readonly seen = new Map<string, z.ZodType>();

  ref(named: NamedSchema, io: "input" | "output"): JsonSchema {
    const earlier = this.seen.get(named.name);
    if (earlier && earlier !== named.schema) throw new Error(`Two different schemas are named ${named.name} in the API reference`);
    if (!earlier) {
      this.seen.set(named.name, named.schema);
      const { schema, defs } = toJsonSchema(named.schema, io, named.name);
      this.schemas[named.name] = schema;
      Object.assign(this.schemas, defs);
    }
    return { $ref: `#/components/schemas/${named.name}` };
  }
}

function responseObject(spec: ResponseSpec, components: Components): JsonSchema {
  const headers = spec.headers ? Object.fromEntries(Object.entries(spec.headers).map(([name, description]) => [name, { description, schema: { type: "string" } }])) : undefined;
  const content = spec.json
    ? { "application/json": { schema: components.ref(spec.json, "output") } }
    : spec.contentType
      ? { [spec.contentType]: { schema: { type: "string", ...(spec.contentType === "text/event-stream" ? {} : { contentMediaType: spec.contentType }) }, ...(spec.events ? { "x-gantry-event-data": components.ref(spec.events, "output") } : {}) } }
      : undefined;
  return { description: spec.description, ...(headers ? { headers } : {}), ...(content ? { content } : {}) };
}

function operation(route: ApiRoute, components: Components): JsonSchema {
  const parameters = [
    ...(route.params ? toParameters(route.params, "path") : []),
    ...(route.query ? toParameters(route.query, "query") : []),
    ...(route.headers ? toParameters(route.headers, "header") : []),
  ];
  const responses: Record<string, JsonSchema> = {};
  for (const spec of route.responses) responses[String(spec.status)] = responseObject(spec, components);
  for (const code of route.errors) {
    const { status, description } = errorStatus[code];
    responses[String(status)] ??= { description, content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } };
  }
  const body = route.body;
  const requestBody = !body
    ? undefined
    : body.kind === "json"
      ? { required: !body.optional, ...(body.description ? { description: body.description } : {}), content: { "application/json": { schema: components.ref(body, "input"), example: route.example.body } } }
      : { required: !body.optional, description: body.description, content: Object.fromEntries(body.contentTypes.map((type) => [type, { schema: type === "multipart/form-data" ? { type: "object" } : { type: "string", contentMediaType: type } }])) };
  return {
    operationId: route.operationId,
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    tags: [areas[route.area]],
    security: route.auth.kind === "none" ? [] : route.auth.kind === "token" ? [{ apiToken: [] }] : [{ sessionCookie: [] }, { apiToken: [] }],
    "x-gantry-auth": route.auth.kind === "none" || route.auth.kind === "instance" ? { kind: route.auth.kind, text: authText[route.auth.kind] } : { ...route.auth, text: authText[route.auth.kind](route.auth.role) },
    "x-gantry-handler": `app/${route.handler}/route.ts`,
    "x-gantry-example": route.example,
    ...(parameters.length ? { parameters } : {}),
    ...(requestBody ? { requestBody } : {}),
    responses,
  };
}

/** The OpenAPI 3.1 document of the REST routes and the earlier systems' endpoints. */
export function buildOpenApiDocument(routes: ApiRoute[] = apiRoutes): JsonSchema {
  const components = new Components();
  components.ref({ name: "Error", schema: errorBodySchema }, "output");
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    const item = (paths[route.path] ??= {});
    const method = route.method.toLowerCase();
    if (item[method]) throw new Error(`${route.method} ${route.path} is in the API reference twice`);
    item[method] = operation(route, components);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Gantry REST API",
      version: "1",
      description:
        "The portal's REST routes (uploads, downloads, event streams, the agent's channel) and the earlier systems' endpoints it answers. Everything else the portal does is a tRPC procedure at /api/trpc: see docs/api.md for the typed client. Errors are `{\"error\": {\"code\", \"message\"}}`.",
    },
    servers: [{ url: "/", description: "This portal" }],
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    tags: Object.values(areas).map((name) => ({ name })),
    paths,
    components: {
      schemas: components.schemas,
      securitySchemes: {
        sessionCookie: { type: "apiKey", in: "cookie", name: "next-auth.session-token", description: "A signed-in browser (`__Secure-next-auth.session-token` over HTTPS). Send `x-gantry-org: <org id>` to act in another of your organisations; a change must come from the portal's own pages." },
        apiToken: { type: "http", scheme: "bearer", description: "An API token made under Settings → API tokens; it acts in its organisation with the lower of its scopes and its maker's role." },
      },
    },
  };
}

let built: ReturnType<typeof buildOpenApiDocument> | null = null;
let cached: { json: string; etag: string } | null = null;

/** The document, built once per process (it depends only on the code): for the reference page. */
export function openApiDocument(): ReturnType<typeof buildOpenApiDocument> {
  built ??= buildOpenApiDocument();
  return built;
}

/** The document as served, with its ETag. */
export function openApiJson(): { json: string; etag: string } {
  if (!cached) {
    const json = JSON.stringify(openApiDocument());
    cached = { json, etag: `"${createHash("sha256").update(json).digest("hex").slice(0, 32)}"` };
  }
  return cached;
}
