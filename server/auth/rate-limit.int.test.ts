import crypto from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { toHttpError } from "../errors";
import { parseCidr, type Cidr } from "../security/ip-ranges";
import { signInWithPassword, signUp } from "./accounts.service";
import { clientAddress, consumeRateLimit, recordPeerAddress, signInDelayMs } from "./rate-limit";

const db = testDb();
const unique = () => crypto.randomBytes(5).toString("hex");
const password = "a sturdy passphrase";

async function newAccount(): Promise<string> {
  const email = `owner-${unique()}@example.test`;
  await signUp(db, { input: { email, name: "Owner", password }, allowSignup: true });
  return email;
}

describe("rate limits", () => {
  it("refuses past the limit and says when to try again, then opens a new window", async () => {
    const key = `test:${unique()}`;
    const rule = { what: "probes", limit: 3, windowMs: 20_000 };
    for (let i = 0; i < 3; i++) await consumeRateLimit(db, key, rule);
    await expect(consumeRateLimit(db, key, rule)).rejects.toMatchObject({ code: "RATE_LIMITED", message: expect.stringMatching(/^Too many probes; try again in (20|1\d) seconds$/) });
    // The window began half a minute ago: it has passed.
    await db.$executeRaw`UPDATE "RateLimit" SET "windowStart" = "windowStart" - interval '30 seconds' WHERE "key" = ${key}`;
    await expect(consumeRateLimit(db, key, rule)).resolves.toBeUndefined();
    // The last second of a window is told as "a second".
    await db.$executeRaw`UPDATE "RateLimit" SET "count" = 3, "windowStart" = "windowStart" - interval '19.1 seconds' WHERE "key" = ${key}`;
    await expect(consumeRateLimit(db, key, rule)).rejects.toMatchObject({ code: "RATE_LIMITED", message: "Too many probes; try again in a second" });
  });

  it("stops guessing at one account from one address, yet its owner still signs in from another", async () => {
    const email = await newAccount();
    const attacker = `198.51.100.${Math.floor(Math.random() * 250)}-${unique()}`;
    for (let i = 0; i < 10; i++) {
      await expect(signInWithPassword(db, { email, password: `guess number ${i}` }, { address: attacker })).rejects.toMatchObject({ code: "UNAUTHORIZED" });
    }
    await expect(signInWithPassword(db, { email, password }, { address: attacker })).rejects.toMatchObject({
      code: "RATE_LIMITED",
      message: expect.stringMatching(/^Too many sign-in attempts for this account from your network address; try again in 1\d minutes$/),
    });
    // Ten failures slow the account down by a second; they do not lock its owner out.
    await expect(signInWithPassword(db, { email, password }, { address: `203.0.113.7-${unique()}` })).resolves.toMatchObject({ email });
  });

  it("slows an account down after ten failures, a second more each time up to ten, rather than refusing", () => {
    expect([0, 9, 10, 11, 14, 19, 100].map((n) => signInDelayMs(n))).toEqual([0, 0, 1_000, 2_000, 5_000, 10_000, 10_000]);
  });

  it("limits new accounts per network address", async () => {
    const address = `198.51.100.${Math.floor(Math.random() * 250)}-${unique()}`;
    for (let i = 0; i < 10; i++) await signUp(db, { input: { email: `n${i}-${unique()}@example.test`, name: "N", password }, allowSignup: true, address });
    await expect(signUp(db, { input: { email: `over-${unique()}@example.test`, name: "N", password }, allowSignup: true, address })).rejects.toMatchObject({ code: "RATE_LIMITED" });
  });

  it("takes the per-address sign-up limit from settings", async () => {
    const address = `203.0.113.${Math.floor(Math.random() * 250)}-${unique()}`;
    const account = () => ({ email: `s-${unique()}@example.test`, name: "S", password });
    for (let i = 0; i < 2; i++) await signUp(db, { input: account(), allowSignup: true, address, signUpsPerHour: 2 });
    await expect(signUp(db, { input: account(), allowSignup: true, address, signUpsPerHour: 2 })).rejects.toMatchObject({ code: "RATE_LIMITED" });
  });
});

describe("the caller's address", () => {
  const ranges = (...list: string[]) => list.map((text) => parseCidr(text)!) as Cidr[];
  const forwardedFor = (value: string) => new Headers({ "x-forwarded-for": value });

  it("is the address that connected, whatever the caller wrote before it", () => {
    expect(clientAddress(forwardedFor("192.0.2.1"), [])).toBe("192.0.2.1");
    expect(clientAddress(forwardedFor("10.0.0.1, 6.6.6.6, 192.0.2.1"), [])).toBe("192.0.2.1");
    expect(clientAddress(forwardedFor("::ffff:192.0.2.1"), [])).toBe("192.0.2.1");
    expect(clientAddress(new Headers({ "x-real-ip": "6.6.6.6" }), [])).toBeUndefined();
  });

  it("believes X-Forwarded-For only from trusted proxies, hop by hop from the end", () => {
    const proxies = ranges("127.0.0.1", "10.0.0.0/8");
    expect(clientAddress(forwardedFor("198.51.100.9, 127.0.0.1"), proxies)).toBe("198.51.100.9");
    expect(clientAddress(forwardedFor("6.6.6.6, 198.51.100.9, 10.1.2.3, 127.0.0.1"), proxies)).toBe("198.51.100.9");
    // A caller that reaches the portal directly cannot pass as a proxy's client.
    expect(clientAddress(forwardedFor("198.51.100.9, 192.0.2.1"), proxies)).toBe("192.0.2.1");
    expect(clientAddress(forwardedFor("127.0.0.1"), proxies)).toBe("127.0.0.1");
  });

  describe("through the portal's front server", () => {
    // The same step scripts/web.ts takes before Next sees a request, on a real socket.
    let server: http.Server;
    let url: string;
    let email: string;
    beforeAll(async () => {
      email = await newAccount();
      server = http.createServer((req, res) => {
        recordPeerAddress(req.headers, req.socket.remoteAddress);
        const headers = new Headers(Object.entries(req.headers).flatMap(([k, v]) => (typeof v === "string" ? [[k, v] as [string, string]] : [])));
        const address = clientAddress(headers, []);
        signInWithPassword(db, { email, password: "not the password" }, { address }).then(
          () => res.writeHead(200).end(),
          (error: unknown) => res.writeHead(toHttpError(error).status).end(address),
        );
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it("still limits a caller who rotates X-Forwarded-For", async () => {
      const answers: number[] = [];
      const seenAs = new Set<string>();
      for (let i = 0; i < 55; i++) {
        const res = await fetch(url, { headers: { "x-forwarded-for": `203.0.113.${i}`, "x-real-ip": `198.51.100.${i}` } });
        answers.push(res.status);
        seenAs.add(await res.text());
      }
      expect(seenAs).toEqual(new Set(["127.0.0.1"]));
      expect(answers.slice(0, 10)).toEqual(Array(10).fill(401));
      expect(answers.slice(10)).toEqual(Array(45).fill(429));
    });
  });
});
