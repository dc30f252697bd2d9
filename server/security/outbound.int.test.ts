import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { raiseAlert, setAlertSettings, listAlerts } from "../alerts/alerts.service";
import type { OrgActor } from "../auth/roles";
import { createDb, type Db } from "../db";
import { env } from "../env";
import { discoverSshHosts } from "../fleet/discovery.service";
import { createDevice, testConnection } from "../fleet/devices.service";
import { createDeviceInput } from "../fleet/fleet.schemas";
import { createProgressReporter } from "../jobs/progress";
import { addVersionFromUrlInput } from "../models/models.schemas";
import { addVersionFromUrl, createModel } from "../models/registry.service";
import { downloadFromHub, downloadUrl, fetchModelVersion } from "../models/sources.service";
import { createLocalBlobStore } from "../storage/local-blob-store";

// Every outbound feature pointed at this machine, with loopback NOT allowed: model URLs (when
// added, and through the fetch job), hub downloads, the alert webhook, Test connection and
// discovery. 127.0.0.2 stands in for a public server (OUTBOUND_ALLOW_CIDRS lets it through)
// so that a redirect from an allowed address to loopback can be seen being refused.

vi.hoisted(() => {
  process.env.OUTBOUND_ALLOW_LOOPBACK = "false";
  process.env.OUTBOUND_ALLOW_PRIVATE = "false";
  process.env.OUTBOUND_ALLOW_CIDRS = "127.0.0.2/32";
});

const PUBLIC_STAND_IN = "127.0.0.2";
const secret = "internal metrics: do not leak";

let database: TestDatabase;
let db: Db;
let admin: OrgActor;
const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-outbound-"));
const blobs = createLocalBlobStore({ root: path.join(root, "blobs") });
const closers: (() => Promise<void>)[] = [];

/** Requests that reached the loopback targets: every test ends with none. */
const reachedLoopback: string[] = [];
let loopbackPort: number;
let loopback6Port: number;
let closedPort: number;
let standInPort: number;
let standInClosedPort: number;
let standInNotHttpPort: number;

function listen(server: net.Server, host: string): Promise<number> {
  const sockets = new Set<net.Socket>();
  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  closers.push(
    () =>
      new Promise((r) => {
        server.close(() => r());
        for (const socket of sockets) socket.destroy();
      }),
  );
  return new Promise((resolve) => server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port)));
}

async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  const port = await new Promise<number>((resolve) => server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port)));
  await new Promise((r) => server.close(r));
  return port;
}

beforeAll(async () => {
  expect(env().OUTBOUND_ALLOW_LOOPBACK).toBe(false);
  database = await createTestDatabase("outbound");
  db = createDb(database.url, 3);
  admin = (await createOrgWithMember(db, "admin")).actor;

  const target = (req: http.IncomingMessage, res: http.ServerResponse) => {
    reachedLoopback.push(`${req.method} ${req.headers.host}${req.url}`);
    res.end(secret);
  };
  loopbackPort = await listen(http.createServer(target), "127.0.0.1");
  loopback6Port = await listen(http.createServer(target), "::1");
  closedPort = await freePort("127.0.0.1");

  const redirects: Record<string, string> = {
    "/to-loopback": `http://127.0.0.1:${loopbackPort}/metrics`,
    "/to-hex": `http://0x7f000001:${loopbackPort}/metrics`,
    "/to-decimal": `http://2130706433:${loopbackPort}/metrics`,
    "/to-ipv6": `http://[::1]:${loopback6Port}/metrics`,
    "/to-localhost": `http://localhost:${loopbackPort}/metrics`,
    "/to-metadata": "http://169.254.169.254/latest/meta-data/",
    "/lab/model/resolve/main/model.onnx": `http://127.0.0.1:${loopbackPort}/content`,
  };
  standInPort = await listen(
    http.createServer((req, res) => {
      const location = redirects[req.url ?? ""];
      if (location) return res.writeHead(302, { location }).end();
      if (req.url === "/file") return res.end("a model file");
      req.resume();
      res.writeHead(404).end();
    }),
    PUBLIC_STAND_IN,
  );
  standInClosedPort = await freePort(PUBLIC_STAND_IN);
  // Something that is not HTTP (nor SSH): it says one line and hangs up.
  standInNotHttpPort = await listen(net.createServer((socket) => socket.end("+OK a key-value store\r\n")), PUBLIC_STAND_IN);
});

afterAll(async () => {
  for (const close of closers) await close();
  await db?.$disconnect();
  await database?.drop();
  fs.rmSync(root, { recursive: true, force: true });
});

async function messageOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, "expected a refusal").toBeInstanceOf(Error);
  return (error as Error).message;
}

/** The same text with the port numbers (and device names) taken out, to compare failures at different ports. */
const withoutPorts = (text: string) => text.replace(/:\d{2,5}\b/g, ":<port>").replace(/port \d+/g, "port <port>").replace(/\bdev-\w+/g, "dev-<name>");

const loopbackRefusal = (lead: string, action: string) => `${lead} a loopback address (this server itself), which Gantry does not ${action}; an instance admin can allow it with OUTBOUND_ALLOW_LOOPBACK=true`;

describe("model URLs", () => {
  it("are refused on loopback however the address is spelled, in the same words whether the port is open or closed", async () => {
    const model = await createModel(db, { actor: admin, input: { name: `ssrf-${crypto.randomUUID().slice(0, 8)}`, description: "" } });
    const add = (url: string) => messageOf(addVersionFromUrl(db, { actor: admin, input: addVersionFromUrlInput.parse({ modelId: model.id, url }) }));
    const action = "download model files from";

    const open = await add(`http://127.0.0.1:${loopbackPort}/metrics`);
    expect(open).toBe(loopbackRefusal("127.0.0.1 is", action));
    expect(await add(`http://127.0.0.1:${closedPort}/metrics`)).toBe(open);
    // The URL parser reads 0x7f000001 and 2130706433 as 127.0.0.1 already.
    expect(await add(`http://0x7f000001:${loopbackPort}/`)).toBe(open);
    expect(await add(`http://0x7f000001:${closedPort}/`)).toBe(open);
    expect(await add(`http://2130706433:${loopbackPort}/`)).toBe(open);
    expect(await add(`http://[::1]:${loopback6Port}/`)).toBe(loopbackRefusal("[::1] is", action));
    expect(await add(`http://[::1]:${closedPort}/`)).toBe(loopbackRefusal("[::1] is", action));
    expect(await add(`http://[::ffff:127.0.0.1]:${loopbackPort}/`)).toBe(loopbackRefusal("[::ffff:7f00:1] is", action));
    expect(await add(`http://localhost:${loopbackPort}/`)).toBe(loopbackRefusal("localhost resolves to", action));
    expect(await add("http://169.254.169.254/latest/meta-data/")).toMatch(/^169\.254\.169\.254 is a cloud metadata address, which Gantry does not download model files from/);
    expect(await add("http://10.0.0.1/model.onnx")).toMatch(/^10\.0\.0\.1 is a private network address, .*OUTBOUND_ALLOW_PRIVATE=true/);

    expect(await db.modelVersion.count({ where: { modelId: model.id } })).toBe(0);
    expect(reachedLoopback).toEqual([]);
  });

  it("follow redirects only to allowed addresses: the hop to loopback is refused, however it is spelled", async () => {
    const standIn = `http://${PUBLIC_STAND_IN}:${standInPort}`;
    const got = await downloadUrl(`${standIn}/file`, { blobs, timeoutMs: 5000 });
    expect(got.bytes).toBe("a model file".length);

    const action = "download model files from";
    for (const route of ["/to-loopback", "/to-hex", "/to-decimal"]) {
      expect(await messageOf(downloadUrl(`${standIn}${route}`, { blobs, timeoutMs: 5000 }))).toBe(loopbackRefusal("127.0.0.1 is", action));
    }
    expect(await messageOf(downloadUrl(`${standIn}/to-ipv6`, { blobs, timeoutMs: 5000 }))).toBe(loopbackRefusal("[::1] is", action));
    expect(await messageOf(downloadUrl(`${standIn}/to-localhost`, { blobs, timeoutMs: 5000 }))).toBe(loopbackRefusal("localhost resolves to", action));
    expect(await messageOf(downloadUrl(`${standIn}/to-metadata`, { blobs, timeoutMs: 5000 }))).toMatch(/^169\.254\.169\.254 is a cloud metadata address/);

    // A hub whose resolve URL redirects to loopback.
    const hubFile = { endpoint: standIn, repo: "lab/model", revision: "main", filename: "model.onnx" };
    expect(await messageOf(downloadFromHub(hubFile, { blobs, timeoutMs: 5000, cacheDir: path.join(root, "hf-cache") }))).toBe(loopbackRefusal("127.0.0.1 is", action));
    expect(reachedLoopback).toEqual([]);
  });

  it("fail their fetch job, when an allowed address redirects to loopback, with the reason on the version", async () => {
    const model = await createModel(db, { actor: admin, input: { name: `ssrf-job-${crypto.randomUUID().slice(0, 8)}`, description: "" } });
    const input = addVersionFromUrlInput.parse({ modelId: model.id, url: `http://${PUBLIC_STAND_IN}:${standInPort}/to-hex` });
    const added = await addVersionFromUrl(db, { actor: admin, input });
    const progress = createProgressReporter(db, { id: added.jobId, orgId: admin.orgId });
    const run = fetchModelVersion(db, {
      versionId: added.versionId, orgId: admin.orgId, createdById: admin.userId, dims: {}, blobs, secretKey: env().ENCRYPTION_KEY, cacheDir: path.join(root, "hf-cache"),
      timeoutMs: 5000, maxBytes: 1_000_000, isLastAttempt: false, progress, signal: new AbortController().signal,
    });
    expect(await messageOf(run)).toBe(loopbackRefusal("127.0.0.1 is", "download model files from"));
    // A refusal is permanent: the version fails at once, without waiting for the last attempt.
    expect(await db.modelVersion.findUniqueOrThrow({ where: { id: added.versionId } })).toMatchObject({ status: "failed", error: loopbackRefusal("127.0.0.1 is", "download model files from"), sha256: null });
    expect(reachedLoopback).toEqual([]);
  });

  it("that fail on an allowed address read the same for a closed port and a service that is not HTTP", async () => {
    const closed = await messageOf(downloadUrl(`http://${PUBLIC_STAND_IN}:${standInClosedPort}/m.onnx`, { blobs, timeoutMs: 5000 }));
    const notHttp = await messageOf(downloadUrl(`http://${PUBLIC_STAND_IN}:${standInNotHttpPort}/m.onnx`, { blobs, timeoutMs: 5000 }));
    expect(withoutPorts(closed)).toBe(withoutPorts(notHttp));
    expect(closed).toMatch(/did not answer with the file \(the connection failed or timed out, or what answered was not HTTP\)/);
  });
});

describe("the alert webhook", () => {
  it("is refused on loopback when saved, is not posted when stored anyway, and never follows a redirect", async () => {
    const { orgId } = await createOrgWithMember(db);
    const save = (url: string) => messageOf(setAlertSettings(db, orgId, { webhookUrl: url }));
    const action = "send webhooks to";
    const open = await save(`http://127.0.0.1:${loopbackPort}/hook`);
    expect(open).toBe(loopbackRefusal("127.0.0.1 is", action));
    expect(await save(`http://127.0.0.1:${closedPort}/hook`)).toBe(open);
    expect(await save(`http://0x7f000001:${loopbackPort}/hook`)).toBe(open);
    expect(await save(`http://[::1]:${loopback6Port}/hook`)).toBe(loopbackRefusal("[::1] is", action));
    expect(await db.alertSettings.findUnique({ where: { orgId } })).toBeNull();

    // Stored before the policy, or a name that resolves elsewhere since: each post is checked.
    const statusFor = async (webhookUrl: string) => {
      await db.alertSettings.upsert({ where: { orgId }, create: { orgId, webhookUrl }, update: { webhookUrl } });
      await raiseAlert(db, { orgId, kind: "device.offline", severity: "critical", title: "t", message: "m" });
      return (await listAlerts(db, { orgId, input: { isOpenOnly: false, limit: 1 } }))[0].webhookStatus;
    };
    expect(await statusFor(`http://127.0.0.1:${loopbackPort}/hook`)).toBe(`failed: ${open}`);
    expect(await statusFor(`http://localhost:${loopbackPort}/hook`)).toBe(`failed: ${loopbackRefusal("localhost resolves to", action)}`);
    expect(await statusFor(`http://${PUBLIC_STAND_IN}:${standInPort}/to-loopback`)).toBe("failed: HTTP 302");

    const closed = await statusFor(`http://${PUBLIC_STAND_IN}:${standInClosedPort}/hook`);
    expect(closed).toMatch(/^failed: no HTTP answer/);
    expect(await statusFor(`http://${PUBLIC_STAND_IN}:${standInNotHttpPort}/hook`)).toBe(closed);
    expect(reachedLoopback).toEqual([]);
  });
});

describe("devices and discovery", () => {
  async function deviceAt(host: string, port: number) {
    const input = createDeviceInput.parse({ name: `dev-${crypto.randomBytes(4).toString("hex")}`, host, port, username: "robot", credential: { kind: "password", password: "pw" } });
    return (await createDevice(db, { actor: admin, input })).id;
  }
  const test = async (host: string, port: number) => {
    const result = await testConnection(db, { actor: admin, orgId: admin.orgId, deviceId: await deviceAt(host, port) });
    expect(result.isOk).toBe(false);
    return result.error!;
  };

  it("Test connection refuses loopback and metadata hosts, whatever the port and spelling", async () => {
    const action = "connect to devices at";
    const open = await test("127.0.0.1", loopbackPort);
    expect(open).toBe(loopbackRefusal("127.0.0.1 is", action));
    expect(await test("127.0.0.1", closedPort)).toBe(open);
    expect(await test("127.0.0.1", 5432)).toBe(open);
    expect(await test("0x7f000001", loopbackPort)).toBe(loopbackRefusal("0x7f000001 resolves to", action));
    expect(await test("0x7f000001", closedPort)).toBe(loopbackRefusal("0x7f000001 resolves to", action));
    expect(await test("0177.0.0.1", closedPort)).toBe(loopbackRefusal("0177.0.0.1 resolves to", action));
    expect(await test("::1", loopback6Port)).toBe(loopbackRefusal("::1 is", action));
    expect(await test("localhost", loopbackPort)).toBe(loopbackRefusal("localhost resolves to", action));
    expect(await test("169.254.169.254", 22)).toMatch(/^169\.254\.169\.254 is a cloud metadata address, which Gantry does not connect to devices at/);
    expect(reachedLoopback).toEqual([]);
  });

  it("Test connection on an allowed host reads the same for a closed port, an HTTP server and another service", async () => {
    const closed = await test(PUBLIC_STAND_IN, standInClosedPort);
    expect(closed).toMatch(/Could not open an SSH session with dev-\w+ \(127\.0\.0\.2:\d+\): the connection failed or timed out, or what answered was not an SSH server/);
    expect(withoutPorts(await test(PUBLIC_STAND_IN, standInPort))).toBe(withoutPorts(closed));
    expect(withoutPorts(await test(PUBLIC_STAND_IN, standInNotHttpPort))).toBe(withoutPorts(closed));
  });

  it("discovery scans no range that holds a loopback or metadata address", async () => {
    const discover = (range: string, port: number) => messageOf(discoverSshHosts(db, { orgId: admin.orgId, input: { range, port, timeoutMs: 500 } }));
    const one = await discover("127.0.0.1", loopbackPort);
    expect(one).toBe(loopbackRefusal("127.0.0.1 is", "scan"));
    expect(await discover("127.0.0.1", closedPort)).toBe(one);
    expect(await discover("127.0.0.0/30", loopbackPort)).toBe(loopbackRefusal("The range 127.0.0.0/30 includes 127.0.0.0,", "scan"));
    expect(await discover("169.254.169.250-169.254.169.254", 22)).toMatch(/^The range .* includes 169\.254\.169\.250, a link-local address, which Gantry does not scan/);
    expect(reachedLoopback).toEqual([]);
  });
});
