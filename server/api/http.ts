import { db } from "../db";
import { AppError } from "../errors";
import { checkRole, type OrgActor, type Role } from "../auth/roles";
import { resolveRequestIdentity } from "../auth/request-actor";

/** The route-handler twin of orgProcedure: who is calling, in which organisation, allowed? */
export async function requireOrgActor(request: Request, minRole: Role): Promise<OrgActor> {
  const identity = await resolveRequestIdentity(db(), request.headers);
  if (identity.authError) throw identity.authError;
  if (!identity.actor) throw new AppError("UNAUTHORIZED", "Sign in, or send an API token as `Authorization: Bearer <token>`");
  const actor = identity.orgActor;
  if (!actor) throw new AppError("FORBIDDEN", identity.requestedOrgId ? "You are not a member of that organisation" : "You are not a member of any organisation yet");
  checkRole(actor, minRole);
  return actor;
}
