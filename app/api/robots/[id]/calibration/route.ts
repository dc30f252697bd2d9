import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseIdParam, parseQuery, requireOrgActor } from "@/server/api/http";
import { calibrationDownloadQuery } from "@/server/hardware/hardware.schemas";
import { exportRobotCalibration } from "@/server/hardware/robots.service";

export const dynamic = "force-dynamic";

/** An arm's calibration as LeRobot's file, byte for byte (the current one, or one from its history). */
export async function GET(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const robotId = parseIdParam((await params).id, "arm");
    const { calibrationId } = parseQuery(request, calibrationDownloadQuery, "calibration download");
    const { fileName, text } = await exportRobotCalibration(db(), { actor, robotId, calibrationId });
    return new Response(text, { headers: { "content-type": "application/json", "content-disposition": `attachment; filename="${fileName}"`, "cache-control": "no-store" } });
  } catch (error) {
    return errorResponse(error);
  }
}
