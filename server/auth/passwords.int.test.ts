import crypto from "node:crypto";
import { TRPCError } from "@trpc/server";
import { afterAll, describe, expect, it, vi } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createCaller } from "../api/root";
import { realtimeHub } from "../jobs/hub";
import { signUp } from "./accounts.service";
import { checkPasswordStrength } from "./passwords";

// Open sign-up, so the API's answers are about the password, not about needing an invite.
vi.hoisted(() => {
  process.env.ALLOW_SIGNUP = "true";
});

const db = testDb();
const unique = () => crypto.randomBytes(5).toString("hex");
afterAll(() => realtimeHub().stop());

/** auth.signUp as the sign-up page calls it, anonymously; the message a person would read. */
async function signUpThroughApi(password: string, name = "Wren Weak"): Promise<string> {
  const caller = createCaller({ db, hub: realtimeHub(), baseUrl: "http://localhost", actor: null, orgActor: null, authError: null, requestedOrgId: null });
  try {
    await caller.auth.signUp({ email: `weak-${unique()}@example.test`, name, password });
    return "created";
  } catch (error) {
    if (!(error instanceof TRPCError)) throw error;
    const issues = error.cause && "issues" in error.cause ? (error.cause as { issues: { message: string }[] }).issues : null;
    return `${error.code}: ${issues ? issues.map((i) => i.message).join("; ") : error.message}`;
  }
}

describe("password strength", () => {
  it("refuses passwords shorter than 12 characters", async () => {
    expect(await signUpThroughApi("aaaaaaaaaa")).toBe("BAD_REQUEST: Use at least 12 characters");
    expect(await signUpThroughApi("password12")).toBe("BAD_REQUEST: Use at least 12 characters");
  });

  it.each([
    ["aaaaaaaaaaaa", /Repeated characters like "aaa" are easy to guess/],
    ["password1234", /similar to a commonly used password/],
    ["qwertyuiop12", /similar to a commonly used password/],
    ["iloveyou2024", /commonly used password|guess/],
  ])("refuses %j, saying why and what would be better", async (password, why) => {
    const answer = await signUpThroughApi(password);
    expect(answer).toMatch(/^BAD_REQUEST: Choose a password that is harder to guess\. /);
    expect(answer).toMatch(why);
    expect(answer).toMatch(/Add more words|Avoid|uncommon words/);
  });

  it("refuses a password made of the person's own name", async () => {
    expect(await signUpThroughApi("wrenweak1234", "Wren Weak")).toBe("BAD_REQUEST: Choose a password that is harder to guess. It is made from your name or email address. Add more words that are less common.");
  });

  it("accepts a passphrase of a few words", async () => {
    expect(await signUpThroughApi("a sturdy passphrase")).toBe("created");
    expect(() => checkPasswordStrength("correct horse battery staple", { userInputs: [] })).not.toThrow();
    expect(() => checkPasswordStrength("xK9#mPq2vL7w", { userInputs: [] })).not.toThrow();
  });

  it("checks before anything is stored", async () => {
    const email = `nothing-${unique()}@example.test`;
    await expect(signUp(db, { input: { email, name: "N", password: "password1234" }, allowSignup: true })).rejects.toMatchObject({ code: "BAD_REQUEST" });
    expect(await db.user.count({ where: { email } })).toBe(0);
  });
});
