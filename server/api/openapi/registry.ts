import type { z } from "zod";
import type { ErrorCode } from "../../errors";
import type { Role } from "../../auth/roles";

// One entry per exported method of every route handler under app/api (tRPC and next-auth
// aside): what the API reference says about it. The schemas are the ones the handler parses
// with, so the document changes when they do; a test walks app/api so a route without an
// entry fails, and sends each entry's example to its schema and, for many, to the handler.

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD";

/**
 * Who may call: nobody in particular, a member signed in by the session cookie or by an API
 * token, or only an API token (an endpoint the rewrite gives its earlier meaning only when
 * the request carries one). The agent, capture trainers and scripts all send an API token;
 * its scopes may lower the role of the person who made it. `instance`: the instance's operators —
 * METRICS_TOKEN, or an instance admin (signed in or with an API token).
 */
export type Auth = { kind: "none" } | { kind: "member"; role: Role } | { kind: "token"; role: Role } | { kind: "instance" };

/** The areas the reference groups routes in, in its order. */
export const areas = {
  system: "System",
  jobs: "Jobs and events",
  edge: "Edge agents: uploads and models",
  agents: "Agents: commands and live joints",
  robots: "Robots",
  datasets: "Datasets",
  models: "Models",
  training: "Training",
  captures: "Captures",
  compatEdge: "Earlier edge clients",
  compatDeployment: "Earlier deployment API",
  compatCapture: "Earlier live-capture server",
  plugplay: "Earlier plug & play API",
  databench: "Earlier DataBench API",
} as const;
export type Area = keyof typeof areas;

/** A JSON body or answer, named so it appears once under components/schemas. */
export interface NamedSchema {
  name: string;
  schema: z.ZodType;
}

export type RequestBody =
  | ({ kind: "json"; optional?: boolean; description?: string } & NamedSchema)
  /** Bytes the handler streams (an image, an archive, a model): no JSON schema, the media types it takes. */
  | { kind: "bytes"; contentTypes: string[]; description: string; optional?: boolean };

export interface ResponseSpec {
  status: number;
  description: string;
  /** A JSON answer with its schema. */
  json?: NamedSchema;
  /** Another media type (server-sent events, a file). */
  contentType?: string;
  /** For `text/event-stream`: the JSON in each event's `data`. */
  events?: NamedSchema;
  /** Response headers worth knowing, with what they say. */
  headers?: Record<string, string>;
}

export interface Example {
  params?: Record<string, string>;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  /** A JSON body, or for a `bytes` body a sentence on what to send. */
  body?: unknown;
}

export interface ApiRoute {
  operationId: string;
  method: Method;
  /** The path clients call, with `{name}` parameters; an earlier system's path when a rewrite serves it. */
  path: string;
  /** The handler's folder under app/, e.g. `api/jobs/[id]/events`. */
  handler: string;
  area: Area;
  summary: string;
  description?: string;
  auth: Auth;
  /** Path parameters, by the names in `path`. */
  params?: z.ZodObject;
  query?: z.ZodType;
  headers?: z.ZodObject;
  body?: RequestBody;
  responses: ResponseSpec[];
  /** The errors this route answers with `{error: {code, message}}`. */
  errors: ErrorCode[];
  example: Example;
}

/** Shorthand for the routes every authenticated handler can refuse. */
export const authErrors: ErrorCode[] = ["UNAUTHORIZED", "FORBIDDEN"];
