import crypto from "node:crypto";
import { describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { signInWithPassword, signUp } from "./accounts.service";
import { consumeRateLimit } from "./rate-limit";

const db = testDb();
const unique = () => crypto.randomBytes(5).toString("hex");

describe("rate limits", () => {
  it("refuses past the limit and says when to try again, then opens a new window", async () => {
    const key = `test:${unique()}`;
    const rule = { what: "probes", limit: 3, windowMs: 1_000 };
    for (let i = 0; i < 3; i++) await consumeRateLimit(db, key, rule);
    await expect(consumeRateLimit(db, key, rule)).rejects.toMatchObject({ code: "RATE_LIMITED", message: "Too many probes; try again in 1 minute" });
    await new Promise((r) => setTimeout(r, 1_100));
    await expect(consumeRateLimit(db, key, rule)).resolves.toBeUndefined();
  });

  it("stops password guessing on one account after ten tries, even with the right password", async () => {
    const email = `guess-${unique()}@example.test`;
    await signUp(db, { input: { email, name: "Target", password: "the right password" }, allowSignup: true });
    for (let i = 0; i < 10; i++) await expect(signInWithPassword(db, { email, password: `guess ${i}` })).rejects.toMatchObject({ code: "UNAUTHORIZED" });
    await expect(signInWithPassword(db, { email, password: "the right password" })).rejects.toMatchObject({ code: "RATE_LIMITED" });
  });

  it("limits new accounts per network address", async () => {
    const address = `198.51.100.${Math.floor(Math.random() * 250)}-${unique()}`;
    for (let i = 0; i < 10; i++) await signUp(db, { input: { email: `n${i}-${unique()}@example.test`, name: "N", password: "a long enough password" }, allowSignup: true, address });
    await expect(signUp(db, { input: { email: `over-${unique()}@example.test`, name: "N", password: "a long enough password" }, allowSignup: true, address })).rejects.toMatchObject({ code: "RATE_LIMITED" });
  });

  it("takes the per-address sign-up limit from settings", async () => {
    const address = `203.0.113.${Math.floor(Math.random() * 250)}-${unique()}`;
    const account = () => ({ email: `s-${unique()}@example.test`, name: "S", password: "a long enough password" });
    for (let i = 0; i < 2; i++) await signUp(db, { input: account(), allowSignup: true, address, signUpsPerHour: 2 });
    await expect(signUp(db, { input: account(), allowSignup: true, address, signUpsPerHour: 2 })).rejects.toMatchObject({ code: "RATE_LIMITED" });
  });
});
