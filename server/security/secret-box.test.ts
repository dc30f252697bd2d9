import { describe, expect, it } from "vitest";
import { openBytes, openSecret, sealBytes, sealSecret } from "./secret-box";

const key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

describe("secret box", () => {
  it("opens what it sealed, and never seals the same text to the same bytes", () => {
    const a = sealSecret("hunter2", key);
    const b = sealSecret("hunter2", key);
    expect(a).not.toBe(b);
    expect(a).not.toContain("hunter2");
    expect(openSecret(a, key)).toBe("hunter2");
    expect(openBytes(sealBytes(Buffer.from([0, 1, 2, 255]), key), key)).toEqual(Buffer.from([0, 1, 2, 255]));
  });

  it("refuses another key, altered bytes and unknown forms", () => {
    const sealed = sealSecret("hunter2", key);
    expect(() => openSecret(sealed, "another key")).toThrow(/ENCRYPTION_KEY has changed/);
    const raw = Buffer.from(sealed.slice(3), "base64");
    raw[14] ^= 1;
    expect(() => openSecret(`v1:${raw.toString("base64")}`, key)).toThrow(/could not be decrypted/);
    expect(() => openSecret("hunter2", key)).toThrow(/cannot read/);
    expect(() => openBytes(Buffer.alloc(5), key)).toThrow(/too short/);
  });

  it("uses ENCRYPTION_KEY from the settings by default", () => {
    expect(openSecret(sealSecret("x"))).toBe("x");
  });
});
