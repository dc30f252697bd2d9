import { describe, expect, it } from "vitest";
import { safeCallback } from "./safe-callback";

const origin = "https://gantry.example.test";

describe("safeCallback", () => {
  it("keeps a path on this site, with its query and fragment", () => {
    expect(safeCallback("/jobs", origin)).toBe("/jobs");
    expect(safeCallback("/settings/tokens?tab=new#top", origin)).toBe("/settings/tokens?tab=new#top");
  });

  it("reads a tab inside a path as the parser does: dropped, leaving a path on this site", () => {
    expect(safeCallback("/\tevil.com", origin)).toBe("/evil.com");
  });

  it.each([
    ["a protocol-relative URL", "//evil.com"],
    ["a backslash the browser reads as a slash", "/\\evil.com"],
    ["a tab before a second slash", "/\t/evil.com"],
    ["a path that resolves to a protocol-relative one", "/.//evil.com"],
    ["this site's URL with a protocol-relative path", `${origin}//evil.com`],
    ["an absolute URL elsewhere", "https://evil.com"],
    ["a script URL", "javascript:alert(1)"],
  ])("sends %s home", (_, raw) => {
    expect(safeCallback(raw, origin)).toBe("/");
  });

  it("sends an empty or missing value home", () => {
    expect(safeCallback("", origin)).toBe("/");
    expect(safeCallback(null, origin)).toBe("/");
  });

  it("keeps an absolute URL on this site as its path", () => {
    expect(safeCallback(`${origin}/jobs?status=running`, origin)).toBe("/jobs?status=running");
  });
});
