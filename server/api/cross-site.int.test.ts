import { encode } from "next-auth/jwt";
import { describe, expect, it } from "vitest";
import { POST as trpcPost } from "../../app/api/trpc/[trpc]/route";
import { GET as listDevices, POST as addDevice } from "../../app/api/compat/deployment/devices/route";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { sessionCookieName } from "../auth/session";
import { createApiToken } from "../auth/tokens.service";
import { env } from "../env";

// What a page on another port of the same host (the same site, so the browser sends the
// session cookie along) could make the portal do: a text/plain fetch to add a device, a
// multipart form to start a self-test. Cookie-signed state changes must come from the portal's
// own pages and be JSON; API tokens, which browsers never send on their own, are not checked.

const db = testDb();
const portal = "http://localhost";
const elsewhere = "http://localhost:8089";

async function signedInAdmin() {
  const { actor, orgId } = await createOrgWithMember(db, "admin");
  // A session as signing in makes one: a row the cookie names.
  const session = await db.authSession.create({ data: { userId: actor.userId, expiresAt: new Date(Date.now() + 3_600_000) } });
  const cookie = `${sessionCookieName()}=${await encode({ token: { sub: actor.userId, sid: session.id }, secret: env().AUTH_SECRET })}`;
  return { actor, orgId, cookie };
}

const device = (name: string) => JSON.stringify({ name, host: "192.0.2.10", username: "robot", password: "hunter2-secret" });
const addRequest = (headers: Record<string, string>, body: BodyInit) => new Request(`${portal}/deployment/devices`, { method: "POST", headers, body });
const trpcRequest = (path: string, headers: Record<string, string>, body: BodyInit) => new Request(`${portal}/api/trpc/${path}`, { method: "POST", headers, body });

function selftestForm(): FormData {
  const form = new FormData();
  form.set("steps", "1");
  return form;
}

describe("cookie-signed requests from other pages", () => {
  it("refuses a text/plain fetch from another origin to add a device, and adds nothing", async () => {
    const { orgId, cookie } = await signedInAdmin();
    const textPlain = { cookie, "content-type": "text/plain;charset=UTF-8" };
    const attempts = [
      { headers: { ...textPlain, origin: elsewhere }, status: 403 },
      { headers: { ...textPlain, origin: "null" }, status: 403 },
      // No Origin and no Sec-Fetch-Site: nothing says the portal's own page sent it.
      { headers: textPlain, status: 403 },
      { headers: { ...textPlain, "sec-fetch-site": "same-site" }, status: 403 },
      // From the portal's own page, a form's type is still refused: any page can send it.
      { headers: { ...textPlain, origin: portal }, status: 415 },
      { headers: { cookie, "content-type": "application/x-www-form-urlencoded", origin: portal }, status: 415 },
      { headers: { cookie, "content-type": "application/json", origin: elsewhere }, status: 403 },
    ];
    for (const [i, { headers, status }] of attempts.entries()) {
      const res = await addRequest(headers, device(`csrf-${i}`));
      const answer = await addDevice(res);
      expect({ i, status: answer.status }).toEqual({ i, status });
    }
    expect(await db.device.count({ where: { orgId } })).toBe(0);
    const refused = await addDevice(addRequest({ ...textPlain, origin: elsewhere }, device("csrf-x")));
    expect((await refused.json()).error.message).toMatch(/sent by a page on http:\/\/localhost:8089, not by the portal's own pages/);

    // Reading stays open to the cookie (a browser keeps other pages from reading the answer).
    expect((await listDevices(new Request(`${portal}/deployment/devices`, { headers: { cookie, origin: elsewhere } }))).status).toBe(200);
  });

  it("takes JSON from the portal's own pages, also behind a proxy that names the public host", async () => {
    const { orgId, cookie } = await signedInAdmin();
    const json = { cookie, "content-type": "application/json" };
    expect((await addDevice(addRequest({ ...json, origin: portal }, device("own-page")))).status).toBe(201);
    expect((await addDevice(addRequest({ ...json, "sec-fetch-site": "same-origin" }, device("own-page-no-origin")))).status).toBe(201);
    expect((await addDevice(addRequest({ ...json, origin: "https://gantry.lab.example", "x-forwarded-host": "gantry.lab.example" }, device("behind-proxy")))).status).toBe(201);
    expect((await addDevice(addRequest({ ...json, origin: new URL(env().PUBLIC_URL).origin }, device("public-url")))).status).toBe(201);
    expect(await db.device.count({ where: { orgId } })).toBe(4);
  });

  it("leaves API tokens alone: agents and scripts need no Origin nor a JSON type", async () => {
    const { actor, orgId } = await signedInAdmin();
    const { token } = await createApiToken(db, { actor, input: { name: "script", scopes: ["admin"] } });
    expect((await addDevice(addRequest({ authorization: `Bearer ${token}`, "content-type": "text/plain" }, device("by-script")))).status).toBe(201);
    expect(await db.device.count({ where: { orgId } })).toBe(1);
  });

  it("refuses a multipart form to the tRPC self-test mutation, from anywhere, and starts nothing", async () => {
    const { orgId, cookie } = await signedInAdmin();
    for (const origin of [elsewhere, portal]) {
      const res = await trpcPost(trpcRequest("system.startSelftest", { cookie, origin }, selftestForm()));
      expect({ origin, status: res.status }).toEqual({ origin, status: 415 });
    }
    const urlencoded = await trpcPost(trpcRequest("system.startSelftest", { cookie, origin: portal, "content-type": "application/x-www-form-urlencoded" }, "steps=1"));
    expect(urlencoded.status).toBe(415);
    const jsonElsewhere = await trpcPost(trpcRequest("system.startSelftest", { cookie, origin: elsewhere, "content-type": "application/json" }, JSON.stringify({ json: { steps: 1, stepMs: 0 } })));
    expect(jsonElsewhere.status).toBe(403);
    expect(JSON.stringify(await jsonElsewhere.json())).toMatch(/not by the portal's own pages/);
    expect(await db.job.count({ where: { orgId } })).toBe(0);

    // The portal's own tRPC client: JSON from its own origin.
    const own = await trpcPost(trpcRequest("models.create", { cookie, origin: portal, "content-type": "application/json" }, JSON.stringify({ json: { name: "from-own-page", description: "" } })));
    expect(own.status).toBe(200);
    expect(await db.model.count({ where: { orgId } })).toBe(1);
  });
});
