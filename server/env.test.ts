import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseEnv, SettingsError } from "./env";

let dir: string;
let home: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-env-"));
  // Not created yet: a fresh machine has no GANTRY_HOME.
  home = path.join(dir, "home");
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const secretsFile = () => path.join(home, "secrets.json");

function settingsError(source: Record<string, string | undefined>): SettingsError {
  try {
    parseEnv(source);
  } catch (error) {
    expect(error).toBeInstanceOf(SettingsError);
    return error as SettingsError;
  }
  throw new Error("parseEnv accepted settings it should have refused");
}

describe("parseEnv", () => {
  it("fills in defaults for a fresh machine", () => {
    const env = parseEnv({ GANTRY_HOME: home });
    expect(env).toMatchObject({
      NODE_ENV: "development",
      GANTRY_HOME: home,
      PORT: 3000,
      ALLOW_SIGNUP: false,
      BLOB_DIR: path.join(home, "blobs"),
      PUBLIC_URL: "http://localhost:3000",
      WORKER_CONCURRENCY: 4,
      isFirebaseEnabled: false,
    });
    expect(env.DATABASE_URL).toBeUndefined();
  });

  it("reads and converts the settings it is given", () => {
    const env = parseEnv({
      GANTRY_HOME: home,
      PORT: "8080",
      ALLOW_SIGNUP: "no",
      BLOB_DIR: path.join(dir, "elsewhere"),
      DATABASE_URL: "postgresql://gantry@db.internal:5432/gantry",
      WORKER_CONCURRENCY: "12",
    });
    expect(env).toMatchObject({ PORT: 8080, ALLOW_SIGNUP: false, BLOB_DIR: path.join(dir, "elsewhere"), PUBLIC_URL: "http://localhost:8080", WORKER_CONCURRENCY: 12 });
    expect(parseEnv({ GANTRY_HOME: home, ALLOW_SIGNUP: "1" }).ALLOW_SIGNUP).toBe(true);
  });

  it("reads the outbound allowances: none by default, a list of addresses and ranges when given", () => {
    expect(parseEnv({ GANTRY_HOME: home })).toMatchObject({ OUTBOUND_ALLOW_LOOPBACK: false, OUTBOUND_ALLOW_PRIVATE: false, OUTBOUND_ALLOW_CIDRS: [] });
    expect(parseEnv({ GANTRY_HOME: home, OUTBOUND_ALLOW_CIDRS: "10.20.0.0/16, 192.0.2.7 fd00::/8" }).OUTBOUND_ALLOW_CIDRS).toEqual(["10.20.0.0/16", "192.0.2.7", "fd00::/8"]);
  });

  it("reads trusted proxies and instance admins: none by default, lists when given", () => {
    expect(parseEnv({ GANTRY_HOME: home })).toMatchObject({ TRUSTED_PROXIES: [], INSTANCE_ADMINS: [] });
    expect(parseEnv({ GANTRY_HOME: home, TRUSTED_PROXIES: "127.0.0.1, ::1 10.0.0.0/8" }).TRUSTED_PROXIES).toEqual(["127.0.0.1", "::1", "10.0.0.0/8"]);
    expect(parseEnv({ GANTRY_HOME: home, INSTANCE_ADMINS: "Ops@Lab.example, root@lab.example" }).INSTANCE_ADMINS).toEqual(["ops@lab.example", "root@lab.example"]);
  });

  it("treats empty settings as unset", () => {
    const env = parseEnv({ GANTRY_HOME: home, PORT: "", DATABASE_URL: "", AUTH_SECRET: "" });
    expect(env.PORT).toBe(3000);
    expect(env.DATABASE_URL).toBeUndefined();
    expect(env.AUTH_SECRET.length).toBeGreaterThanOrEqual(32);
  });

  it.each([
    ["PORT", "not-a-number", /PORT: /],
    ["PORT", "70000", /PORT: /],
    ["DATABASE_URL", "mysql://root@localhost/gantry", /DATABASE_URL: must be a postgres:\/\/ or postgresql:\/\/ URL/],
    ["AUTH_SECRET", "too-short", /AUTH_SECRET: must be at least 32 characters/],
    ["ENCRYPTION_KEY", "not-base64-32-bytes", /ENCRYPTION_KEY: must be 32 bytes, base64-encoded/],
    ["ALLOW_SIGNUP", "maybe", /ALLOW_SIGNUP: /],
    ["NODE_ENV", "staging", /NODE_ENV: /],
    ["PUBLIC_URL", "gantry.local", /PUBLIC_URL: /],
    ["FIREBASE_AUTH_EMULATOR_HOST", "localhost", /FIREBASE_AUTH_EMULATOR_HOST: must be host:port/],
    ["WORKER_CONCURRENCY", "0", /WORKER_CONCURRENCY: /],
    ["OUTBOUND_ALLOW_LOOPBACK", "sometimes", /OUTBOUND_ALLOW_LOOPBACK: /],
    ["OUTBOUND_ALLOW_CIDRS", "10.0.0.0/8, lab.example", /OUTBOUND_ALLOW_CIDRS: "lab.example" is not an address or a range/],
    ["OUTBOUND_ALLOW_CIDRS", "10.0.0.0/33", /OUTBOUND_ALLOW_CIDRS: "10.0.0.0\/33" is not/],
    ["TRUSTED_PROXIES", "proxy.lab.example", /TRUSTED_PROXIES: "proxy.lab.example" is not an address or a range/],
    ["INSTANCE_ADMINS", "ops@lab.example, ops", /INSTANCE_ADMINS: "ops" is not an email address/],
    ["METRICS_TOKEN", "short", /METRICS_TOKEN: must be at least 32 characters/],
  ])("names %s when it is %j", (name, value, message) => {
    const error = settingsError({ GANTRY_HOME: home, [name]: value });
    expect(error.message).toMatch(message);
  });

  it("lists every bad setting at once", () => {
    const error = settingsError({ GANTRY_HOME: home, PORT: "x", AUTH_SECRET: "short" });
    expect(error.message).toContain("PORT");
    expect(error.message).toContain("AUTH_SECRET");
  });

  it("writes no secrets file when an invalid setting stops the start", () => {
    settingsError({ GANTRY_HOME: home, PORT: "x" });
    expect(fs.existsSync(secretsFile())).toBe(false);
  });

  it("generates missing secrets once into secrets.json, readable only by its owner, and reuses them", () => {
    const first = parseEnv({ GANTRY_HOME: home });
    expect(fs.statSync(secretsFile()).mode & 0o777).toBe(0o600);
    expect(first.AUTH_SECRET.length).toBeGreaterThanOrEqual(32);
    expect(Buffer.from(first.ENCRYPTION_KEY, "base64")).toHaveLength(32);

    const second = parseEnv({ GANTRY_HOME: home });
    expect(second.AUTH_SECRET).toBe(first.AUTH_SECRET);
    expect(second.ENCRYPTION_KEY).toBe(first.ENCRYPTION_KEY);

    const elsewhere = parseEnv({ GANTRY_HOME: path.join(dir, "other-home") });
    expect(elsewhere.AUTH_SECRET).not.toBe(first.AUTH_SECRET);
  });

  it("prefers secrets from the environment, and needs no file when both are given", () => {
    const given = { AUTH_SECRET: "a".repeat(40), ENCRYPTION_KEY: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" };
    const env = parseEnv({ GANTRY_HOME: home, ...given });
    expect(env).toMatchObject(given);
    expect(fs.existsSync(secretsFile())).toBe(false);

    const partly = parseEnv({ GANTRY_HOME: home, AUTH_SECRET: given.AUTH_SECRET });
    expect(partly.AUTH_SECRET).toBe(given.AUTH_SECRET);
    expect(partly.ENCRYPTION_KEY).toBe(JSON.parse(fs.readFileSync(secretsFile(), "utf8")).encryptionKey);
  });

  it.each([
    ["holds the wrong fields", JSON.stringify({ authSecret: "short" })],
    ["was cut short", '{"authSecret": "abc'],
  ])("refuses a secrets.json that %s, naming the file and what to do", (_, content) => {
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(secretsFile(), content);
    const error = settingsError({ GANTRY_HOME: home });
    expect(error.message).toContain(secretsFile());
    expect(error.message).toContain("remove it");
  });

  it("requires FIREBASE_PROJECT_ID and FIREBASE_API_KEY together", () => {
    expect(settingsError({ GANTRY_HOME: home, FIREBASE_PROJECT_ID: "gantry-lab" }).message).toMatch(/FIREBASE_PROJECT_ID and FIREBASE_API_KEY/);
    expect(settingsError({ GANTRY_HOME: home, FIREBASE_API_KEY: "key" }).message).toMatch(/FIREBASE_PROJECT_ID and FIREBASE_API_KEY/);
    expect(parseEnv({ GANTRY_HOME: home, FIREBASE_PROJECT_ID: "gantry-lab", FIREBASE_API_KEY: "key" }).isFirebaseEnabled).toBe(true);
  });
});

describe("safety checks", () => {
  const firebase = { FIREBASE_PROJECT_ID: "p", FIREBASE_API_KEY: "k", FIREBASE_AUTH_EMULATOR_HOST: "127.0.0.1:9099" };

  it("refuses the Firebase emulator in a production start unless asked for", () => {
    expect(settingsError({ GANTRY_HOME: home, NODE_ENV: "production", ...firebase }).message).toMatch(/FIREBASE_AUTH_EMULATOR_HOST: turns off the signature check/);
    expect(parseEnv({ GANTRY_HOME: home, NODE_ENV: "production", FIREBASE_ALLOW_EMULATOR: "true", ...firebase }).isFirebaseEnabled).toBe(true);
    expect(parseEnv({ GANTRY_HOME: home, NODE_ENV: "development", ...firebase }).isFirebaseEnabled).toBe(true);
  });

  it("refuses a stale-worker limit that a busy worker would trip", () => {
    expect(settingsError({ GANTRY_HOME: home, WORKER_HEARTBEAT_MS: "5000", WORKER_STALE_AFTER_MS: "6000" }).message).toMatch(/WORKER_STALE_AFTER_MS: must be at least three WORKER_HEARTBEAT_MS/);
  });
});
