-- Sessions live in the database: the session cookie names one by id (`sid`), every request
-- checks it is still there, and signing out, "sign out everywhere", a password change or
-- removal from an organisation delete it, so an old cookie stops working at once.
CREATE TABLE "AuthSession" (
    "id" UUID NOT NULL,
    "userId" UUID NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastSeenAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expiresAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "AuthSession_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "AuthSession_userId_idx" ON "AuthSession"("userId");
ALTER TABLE "AuthSession" ADD CONSTRAINT "AuthSession_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Instance admins see how this Gantry is installed (hosts, paths). The first account is one;
-- on an install that already has accounts, that is the oldest.
ALTER TABLE "User" ADD COLUMN "isInstanceAdmin" BOOLEAN NOT NULL DEFAULT false;
UPDATE "User" SET "isInstanceAdmin" = true WHERE "id" = (SELECT "id" FROM "User" ORDER BY "createdAt", "id" LIMIT 1);

-- Any end of access (a session deleted, a token revoked, expired or rescoped, a membership
-- removed or its role changed) is announced on `gantry_access`, ids only, by whichever code or
-- cascade made it: open event streams re-check at once and the model server forgets the token.
CREATE FUNCTION "gantry_notify_access"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'AuthSession' THEN
        PERFORM pg_notify('gantry_access', json_build_object('userId', OLD."userId", 'sessionId', OLD."id")::text);
    ELSIF TG_TABLE_NAME = 'ApiToken' THEN
        PERFORM pg_notify('gantry_access', json_build_object('userId', OLD."userId", 'orgId', OLD."orgId", 'tokenId', OLD."id")::text);
    ELSE
        PERFORM pg_notify('gantry_access', json_build_object('userId', OLD."userId", 'orgId', OLD."orgId")::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER "AuthSession_access_end" AFTER DELETE ON "AuthSession"
    FOR EACH ROW EXECUTE FUNCTION "gantry_notify_access"();
CREATE TRIGGER "ApiToken_access_end" AFTER DELETE ON "ApiToken"
    FOR EACH ROW EXECUTE FUNCTION "gantry_notify_access"();
CREATE TRIGGER "ApiToken_access_change" AFTER UPDATE OF "revokedAt", "expiresAt", "scopes" ON "ApiToken"
    FOR EACH ROW WHEN (OLD."revokedAt" IS DISTINCT FROM NEW."revokedAt" OR OLD."expiresAt" IS DISTINCT FROM NEW."expiresAt" OR OLD."scopes" IS DISTINCT FROM NEW."scopes")
    EXECUTE FUNCTION "gantry_notify_access"();
CREATE TRIGGER "Membership_access_end" AFTER DELETE ON "Membership"
    FOR EACH ROW EXECUTE FUNCTION "gantry_notify_access"();
CREATE TRIGGER "Membership_access_change" AFTER UPDATE OF "role" ON "Membership"
    FOR EACH ROW WHEN (OLD."role" IS DISTINCT FROM NEW."role")
    EXECUTE FUNCTION "gantry_notify_access"();
