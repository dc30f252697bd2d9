import { db } from "@/server/db";
import { env } from "@/server/env";
import { errorResponse } from "@/server/errors";
import { checkMetricsAccess } from "@/server/auth/metrics-access";
import { EXPOSITION_CONTENT_TYPE } from "@/server/metrics/exposition";
import { collectMetrics, renderMetrics } from "@/server/metrics/metrics.service";
import { processMetrics } from "@/server/metrics/process-metrics";

export const dynamic = "force-dynamic";

/**
 * Prometheus text for the portal and its workers: jobs, queue, durations, workers, and every
 * process's uploads, rate-limit refusals and open streams. For METRICS_TOKEN or instance admins.
 */
export async function GET(request: Request) {
  try {
    const settings = env();
    await checkMetricsAccess(db(), request.headers, { metricsToken: settings.METRICS_TOKEN, instanceAdmins: settings.INSTANCE_ADMINS });
    // This process's own figures are written first, so they are current in what it answers.
    await processMetrics().flush();
    const text = renderMetrics(await collectMetrics(db(), settings));
    return new Response(text, { headers: { "content-type": EXPOSITION_CONTENT_TYPE, "cache-control": "no-store" } });
  } catch (error) {
    return errorResponse(error);
  }
}
