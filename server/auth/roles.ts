import { z } from "zod";
import { AppError } from "../errors";

export const roles = ["viewer", "operator", "admin", "owner"] as const;
export const roleSchema = z.enum(roles);
export type Role = z.infer<typeof roleSchema>;

export function roleRank(role: Role): number {
  return roles.indexOf(role);
}

export function hasRole(actual: Role, minimum: Role): boolean {
  return roleRank(actual) >= roleRank(minimum);
}

export function lowerRole(a: Role, b: Role): Role {
  return roleRank(a) <= roleRank(b) ? a : b;
}

/** Who is acting: a signed-in user, or a user's API token (whose scopes may lower its role). */
export interface Actor {
  userId: string;
  label: string;
  tokenId?: string;
  /** The browser session (AuthSession) a signed-in person acts through. */
  sessionId?: string;
}

/** An actor acting inside one organisation with an effective role. */
export interface OrgActor extends Actor {
  orgId: string;
  role: Role;
}

/** The one role check of every transport: FORBIDDEN, saying which role is needed. */
export function checkRole(actor: OrgActor, minimum: Role): void {
  if (!hasRole(actor.role, minimum)) {
    const article = (r: Role) => (r === "admin" || r === "operator" || r === "owner" ? "an" : "a");
    throw new AppError("FORBIDDEN", `This needs the ${minimum} role or higher; you are ${article(actor.role)} ${actor.role} here`);
  }
}
