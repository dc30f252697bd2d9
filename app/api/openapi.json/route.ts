import { openApiJson } from "@/server/api/openapi/document";

/**
 * The OpenAPI 3.1 document of the REST routes. Public: it describes the portal's code, the same
 * on every instance, and holds nothing of this one; schema tools fetch it before they have a token.
 */
export function GET(request: Request) {
  const { json, etag } = openApiJson();
  const headers = { "content-type": "application/json", etag, "cache-control": "public, max-age=300" };
  if (request.headers.get("if-none-match") === etag) return new Response(null, { status: 304, headers });
  return new Response(json, { headers });
}
