import { z } from "zod";
import { healthSchema } from "../../../system/system.schemas";
import { jobEventSchema } from "../../../jobs/jobs.schemas";
import { idParamSchema } from "../../http";
import { EVENT_SEQ_MAX, lastEventIdSchema } from "../../sse";
import { authErrors, type ApiRoute } from "../registry";

const jobEvent = { name: "JobEvent", schema: jobEventSchema };
const lastEventIdHeader = z.object({ "last-event-id": lastEventIdSchema(EVENT_SEQ_MAX).optional() });

export const systemRoutes: ApiRoute[] = [
  {
    operationId: "getHealth",
    method: "GET",
    path: "/api/health",
    handler: "api/health",
    area: "system",
    summary: "Whether the database, the workers and the job queue are well",
    description: "For load balancers and monitors: 200 when healthy, 503 when degraded, with the same body. Reports no secrets.",
    auth: { kind: "none" },
    responses: [
      { status: 200, description: "Healthy", json: { name: "Health", schema: healthSchema } },
      { status: 503, description: "Degraded: the body says which part and what to do", json: { name: "Health", schema: healthSchema } },
    ],
    errors: [],
    example: {},
  },
  {
    operationId: "getMetrics",
    method: "GET",
    path: "/api/metrics",
    handler: "api/metrics",
    area: "system",
    summary: "Prometheus metrics of the portal and its workers",
    description: "The text exposition format: jobs by kind and status, queue depth and age, job durations, workers and the handoff window (read from the database), and each process's open event streams, upload bytes, rate-limit refusals and handoffs (with a `process` label). See docs/operations.md.",
    auth: { kind: "instance" },
    responses: [{ status: 200, description: "The metrics", contentType: "text/plain; version=0.0.4" }],
    errors: ["UNAUTHORIZED", "FORBIDDEN"],
    example: {},
  },
  {
    operationId: "getOpenApiDocument",
    method: "GET",
    path: "/api/openapi.json",
    handler: "api/openapi.json",
    area: "system",
    summary: "This document",
    description: "The OpenAPI 3.1 description of the REST routes, built from the schemas the routes parse with. Public: it holds nothing of this instance, only what the portal's code says, and code generators fetch it before they have a token.",
    auth: { kind: "none" },
    responses: [{ status: 200, description: "The document", contentType: "application/json", headers: { ETag: "Changes when the portal's API does" } }],
    errors: [],
    example: {},
  },
  {
    operationId: "streamOrgEvents",
    method: "GET",
    path: "/api/events",
    handler: "api/events",
    area: "jobs",
    summary: "Every job event of the organisation, live",
    description: "Server-sent events (`event: job`). Event ids number the organisation's events in commit order; reconnect with `Last-Event-ID` to resume after one without a gap. Without it the stream starts at the newest event.",
    auth: { kind: "member", role: "viewer" },
    headers: lastEventIdHeader,
    responses: [{ status: 200, description: "The event stream", contentType: "text/event-stream", events: jobEvent }],
    errors: ["BAD_REQUEST", ...authErrors],
    example: { headers: { "last-event-id": "1200" } },
  },
  {
    operationId: "streamJobEvents",
    method: "GET",
    path: "/api/jobs/{id}/events",
    handler: "api/jobs/[id]/events",
    area: "jobs",
    summary: "One job's progress, live",
    description: "Server-sent events (`event: job`) from the job's first event, or after `Last-Event-ID` (the event's seq); ends with `event: end` once the job has ended and every event was sent.",
    auth: { kind: "member", role: "viewer" },
    params: z.object({ id: idParamSchema }),
    headers: lastEventIdHeader,
    responses: [{ status: 200, description: "The event stream", contentType: "text/event-stream", events: jobEvent }],
    errors: ["BAD_REQUEST", ...authErrors, "NOT_FOUND"],
    example: { params: { id: "5d0c2f4e-8a1b-4c3d-9e7f-0a1b2c3d4e5f" } },
  },
];
