import type { Db, Tx } from "../db";
import { AppError } from "../errors";

// Instance admins see how this Gantry is installed (host name, database, blob store): the
// first account made on it, and the people whose emails are in INSTANCE_ADMINS. Owning an
// organisation is not enough — on a shared install every team owns one.

export async function isInstanceAdmin(db: Db, { userId, instanceAdmins }: { userId: string; instanceAdmins: string[] }): Promise<boolean> {
  const user = await db.user.findUnique({ where: { id: userId }, select: { email: true, isInstanceAdmin: true } });
  return Boolean(user && (user.isInstanceAdmin || instanceAdmins.includes(user.email.toLowerCase())));
}

export async function checkInstanceAdmin(db: Db, options: { userId: string; instanceAdmins: string[] }): Promise<void> {
  if (!(await isInstanceAdmin(db, options))) {
    throw new AppError("FORBIDDEN", "Only instance admins see how this Gantry is installed (the first account, and the emails listed in INSTANCE_ADMINS); ask one of them");
  }
}

/** The first account on an install becomes its instance admin; call it under the sign-up lock. */
export async function makeFirstAccountInstanceAdmin(tx: Tx, userId: string): Promise<void> {
  if ((await tx.user.count({ take: 2 })) === 1) await tx.user.update({ where: { id: userId }, data: { isInstanceAdmin: true } });
}
