import type { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import { recordAudit } from "../audit/audit.service";
import { checkPasswordStrength, hashPassword, verifyPassword } from "./passwords";
import { consumeRateLimit, rateLimits } from "./rate-limit";
import type { Actor } from "./roles";
import { endSessionsOf } from "./sessions.service";
import type { changePasswordInput } from "./auth.schemas";

/**
 * Changes a person's password after checking the current one. Every other browser signed in
 * as them is signed out (whoever learnt the old password may be one); this one stays.
 */
export async function changePassword(db: Db, { actor, input }: { actor: Actor; input: z.output<typeof changePasswordInput> }): Promise<{ endedSessions: number }> {
  await consumeRateLimit(db, `password-change:user:${actor.userId}`, rateLimits.passwordChangePerUser);
  const user = await db.user.findUnique({ where: { id: actor.userId } });
  if (!user) throw new AppError("UNAUTHORIZED", "Your account no longer exists");
  if (!user.passwordHash) throw new AppError("BAD_REQUEST", "You sign in with Firebase, so there is no Gantry password to change; change it where you manage your Firebase account");
  if (!(await verifyPassword(user.passwordHash, input.currentPassword))) throw new AppError("BAD_REQUEST", "Your current password is not right, so the password was not changed");
  if (input.newPassword === input.currentPassword) throw new AppError("BAD_REQUEST", "The new password is the same as the current one; choose a different one");
  checkPasswordStrength(input.newPassword, { userInputs: [user.email, user.name] });
  const passwordHash = await hashPassword(input.newPassword);
  return db.$transaction(async (tx) => {
    await tx.user.update({ where: { id: user.id }, data: { passwordHash } });
    const endedSessions = await endSessionsOf(tx, { userId: user.id, keep: actor.sessionId });
    await recordAudit(tx, { orgId: user.lastOrgId, actor, action: "auth.password_change", target: user.email, data: { endedSessions } });
    return { endedSessions };
  });
}
