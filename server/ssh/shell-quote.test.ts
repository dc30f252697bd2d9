import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { quoteShell, shellCommand } from "./shell-quote";

// Each value goes through a real sh and must come back byte for byte, never run.
const echoBack = (value: string) => execFileSync("sh", ["-c", `printf '%s' ${quoteShell(value)}`], { encoding: "utf8" });

describe("quoteShell", () => {
  it.each([
    "plain",
    "with space",
    "it's",
    "''",
    "$(touch /tmp/gantry-pwned)",
    "`id`",
    "a; rm -rf /",
    "new\nline",
    "$HOME ${PATH} \\ \" * ? [a] ~ # & | < > !",
    "",
  ])("passes %j through a shell unchanged", (value) => {
    expect(echoBack(value)).toBe(value);
  });

  it("quotes every argument of a command", () => {
    expect(shellCommand("sha256sum", "--", "/m/it's.onnx")).toBe(`'sha256sum' '--' '/m/it'\\''s.onnx'`);
    expect(execFileSync("sh", ["-c", `${shellCommand("printf", "%s|", "a b", "c'd")}`], { encoding: "utf8" })).toBe("a b|c'd|");
  });

  it("refuses a NUL byte, which no shell argument can hold", () => {
    expect(() => quoteShell("a\0b")).toThrow(/NUL/);
  });
});
