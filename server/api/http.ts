import { z } from "zod";
import { db } from "../db";
import { AppError } from "../errors";
import { checkRole, type OrgActor, type Role } from "../auth/roles";
import { resolveRequestIdentity } from "../auth/request-actor";
import { checkCrossSite } from "./cross-site";
import { declaredLength, readJsonBody } from "./json-body";
import { refuseNulCharacters } from "../security/nul-characters";
import { countedBody, type UploadKind } from "./upload-bytes";

/**
 * The route-handler twin of orgProcedure: who is calling, in which organisation, allowed?
 * A state change signed in by the session cookie must come from the portal's own pages.
 */
export async function requireOrgActor(request: Request, minRole: Role): Promise<OrgActor> {
  checkCrossSite(request);
  const identity = await resolveRequestIdentity(db(), request.headers);
  if (identity.authError) throw identity.authError;
  if (!identity.actor) throw new AppError("UNAUTHORIZED", "Sign in, or send an API token as `Authorization: Bearer <token>`");
  const actor = identity.orgActor;
  if (!actor) throw new AppError("FORBIDDEN", identity.requestedOrgId ? "You are not a member of that organisation" : "You are not a member of any organisation yet");
  checkRole(actor, minRole);
  return actor;
}

/** Every id in a route's path. */
export const idParamSchema = z.uuid();

/** A path segment that must be an id, or a 400 saying which one is wrong. */
export function parseIdParam(value: string, what: string): string {
  const parsed = idParamSchema.safeParse(value);
  if (!parsed.success) throw new AppError("BAD_REQUEST", `The ${what} id in the URL is not a valid id`);
  return parsed.data;
}

/** The query string parsed with a zod schema, or a 400 naming each bad parameter. */
export function parseQuery<S extends z.ZodType>(request: Request, schema: S, what: string): z.output<S> {
  const query = Object.fromEntries(new URL(request.url).searchParams);
  refuseNulCharacters(query, `The ${what}'s query`);
  const parsed = schema.safeParse(query);
  if (!parsed.success) throw new AppError("BAD_REQUEST", `The ${what}'s query is not valid: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`);
  return parsed.data;
}

/**
 * The JSON body parsed with a zod schema (at most API_MAX_BODY_BYTES), or a 400 that starts
 * with `hint` (what to send) and names each bad field.
 */
export async function parseJsonBody<S extends z.ZodType>(request: Request, schema: S, hint: string, options: { whenEmpty?: unknown } = {}): Promise<z.output<S>> {
  const body = await readJsonBody(request, options).catch((error: unknown) => {
    if (error instanceof AppError && error.code === "BAD_REQUEST") throw new AppError("BAD_REQUEST", `${hint}: ${error.message.charAt(0).toLowerCase()}${error.message.slice(1)}`);
    throw error;
  });
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new AppError("BAD_REQUEST", `${hint}: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`);
  return parsed.data;
}

/** A request's raw body (an upload), with what a service needs to bound it before reading. */
export function rawBody(request: Request, countAs?: UploadKind): { body: ReadableStream<Uint8Array> | null; contentType: string | null; declaredBytes: number | null } {
  return { body: countAs ? countedBody(request.body, countAs) : request.body, contentType: request.headers.get("content-type"), declaredBytes: declaredLength(request.headers) };
}
