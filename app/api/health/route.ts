import { db } from "@/server/db";
import { env } from "@/server/env";
import { checkHealth } from "@/server/system/health.service";

export const dynamic = "force-dynamic";

/** For load balancers and monitors: 200 when healthy, 503 when degraded. No secrets. */
export async function GET() {
  const health = await checkHealth(db(), { staleAfterMs: env().WORKER_STALE_AFTER_MS });
  return Response.json(health, { status: health.status === "ok" ? 200 : 503, headers: { "cache-control": "no-store" } });
}
