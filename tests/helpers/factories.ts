import crypto from "node:crypto";
import type { Db } from "../../server/db";
import type { OrgActor, Role } from "../../server/auth/roles";

const unique = () => crypto.randomBytes(5).toString("hex");

/** A fresh organisation with one member of the given role (and an owner when that is not it). */
export async function createOrgWithMember(db: Db, role: Role = "owner"): Promise<{ orgId: string; actor: OrgActor; owner: OrgActor }> {
  const org = await db.org.create({ data: { name: `Org ${unique()}`, slug: `org-${unique()}` } });
  const owner = await addMember(db, org.id, "owner");
  const actor = role === "owner" ? owner : await addMember(db, org.id, role);
  return { orgId: org.id, actor, owner };
}

export async function addMember(db: Db, orgId: string, role: Role): Promise<OrgActor> {
  const name = `${role} ${unique()}`;
  const user = await db.user.create({ data: { email: `${name.replace(" ", "-")}@example.test`, name, lastOrgId: orgId } });
  await db.membership.create({ data: { orgId, userId: user.id, role } });
  return { userId: user.id, label: name, orgId, role };
}

/** Polls until `check` returns a value, or fails with what it last saw. */
export async function waitFor<T>(check: () => Promise<T | null | undefined | false>, { timeoutMs = 15_000, intervalMs = 50, what = "condition" } = {}): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
