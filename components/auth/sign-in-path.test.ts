import { describe, expect, it } from "vitest";
import { signInPath } from "./sign-in-path";

describe("signInPath", () => {
  it("comes back to the page asked for, its query kept", () => {
    expect(signInPath("/jobs?status=failed")).toBe("/sign-in?callbackUrl=%2Fjobs%3Fstatus%3Dfailed");
  });

  it("goes to sign-in alone for the Overview, no page, or anything that is not a path on this site", () => {
    for (const here of ["/", null, undefined, "", "//evil.example", "/\\evil.example", "https://evil.example/", "jobs"]) expect(signInPath(here)).toBe("/sign-in");
  });
});
