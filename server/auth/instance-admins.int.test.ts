import { TRPCError } from "@trpc/server";
import { afterAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { sessionCookie } from "../../tests/helpers/session";
import { createContext } from "../api/context";
import { createCaller } from "../api/root";
import { env } from "../env";
import { realtimeHub } from "../jobs/hub";
import { describeInstance } from "../system/system.service";
import { createApiToken } from "./tokens.service";

// How the instance is installed (host name, database host and port, blob folder) is for
// instance admins: the first account, and INSTANCE_ADMINS. Owning an organisation is not enough.

const db = testDb();
afterAll(() => realtimeHub().stop());

async function callerFor(userId: string) {
  return createCaller(await createContext(new Headers({ cookie: await sessionCookie(db, userId) })));
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "OK";
  } catch (error) {
    return error instanceof TRPCError ? error.code : String(error);
  }
}

describe("system.instance", () => {
  it("is refused to an organisation's owner who is not an instance admin, saying who may see it", async () => {
    const { owner } = await createOrgWithMember(db, "owner");
    const caller = await callerFor(owner.userId);
    await expect(caller.system.instance()).rejects.toMatchObject({ code: "FORBIDDEN", message: expect.stringMatching(/^Only instance admins see how this Gantry is installed/) });
    expect((await caller.auth.me()).user.isInstanceAdmin).toBe(false);
  });

  it("is shown to an instance admin", async () => {
    const { owner } = await createOrgWithMember(db, "viewer");
    await db.user.update({ where: { id: owner.userId }, data: { isInstanceAdmin: true } });
    const caller = await callerFor(owner.userId);
    expect(await caller.system.instance()).toMatchObject({ blobDir: env().BLOB_DIR });
    expect((await caller.auth.me()).user.isInstanceAdmin).toBe(true);
  });

  it("is shown to the people listed in INSTANCE_ADMINS", async () => {
    const { owner } = await createOrgWithMember(db, "owner");
    const { email } = await db.user.findUniqueOrThrow({ where: { id: owner.userId } });
    await expect(describeInstance(db, { userId: owner.userId, settings: env() })).rejects.toMatchObject({ code: "FORBIDDEN" });
    await expect(describeInstance(db, { userId: owner.userId, settings: { ...env(), INSTANCE_ADMINS: [email.toLowerCase()] } })).resolves.toMatchObject({ blobDir: env().BLOB_DIR });
  });

  it("is not shown through an API token, not even an instance admin's", async () => {
    const { owner } = await createOrgWithMember(db, "owner");
    await db.user.update({ where: { id: owner.userId }, data: { isInstanceAdmin: true } });
    const { token } = await createApiToken(db, { actor: owner, input: { name: "script", scopes: ["admin"] } });
    const caller = createCaller(await createContext(new Headers({ authorization: `Bearer ${token}` })));
    expect(await codeOf(caller.system.instance())).toBe("FORBIDDEN");
  });
});
