import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../tests/helpers/db";
import { createOrgWithMember, waitFor } from "../tests/helpers/factories";
import { createApiToken, revokeApiToken } from "../server/auth/tokens.service";
import type { OrgActor } from "../server/auth/roles";
import { cancelAgentCommand, getAgentCommand, listAgents, sendAgentCommand } from "../server/hardware/commands.service";
import { AGENT_COMMANDS_CHANNEL } from "../server/hardware/hardware.schemas";
import { createRobot, getRobot } from "../server/hardware/robots.service";
import { AGENT_BUNDLE, buildAgent, freePort, runAgent, startTestPortal, tempDir, type TestPortal } from "./test-helpers";

// `gantry-agent connect`, the bundle a user runs, against the real agent route handlers and
// Postgres: presence, commands and their outcomes when either end goes away.

// Short presence and grace, here and in the portal, so a lost agent is noticed in seconds.
const TIMINGS = { AGENT_PRESENCE_MS: "300", AGENT_GRACE_MS: "1500", SSE_HEARTBEAT_MS: "300" };
Object.assign(process.env, TIMINGS);

const db = testDb();
let portal: TestPortal;
let portalPort: number;
let portalHome: string;
let token: string;
let actor: OrgActor;
let home: string;
const agents: ChildProcess[] = [];

interface RunningAgent {
  child: ChildProcess;
  output: () => string;
}

function startPortal(): Promise<TestPortal> {
  return startTestPortal({ GANTRY_HOME: portalHome, TEST_PORTAL_PORT: String(portalPort), ...TIMINGS });
}

function connectAgent(name: string, agentHome = home, env: Record<string, string> = {}): RunningAgent {
  const child = spawn(process.execPath, [AGENT_BUNDLE, "connect", "--name", name], { env: { ...process.env, GANTRY_AGENT_HOME: agentHome, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  agents.push(child);
  return { child, output: () => output };
}

async function onlineAgent(name: string) {
  return waitFor(async () => (await listAgents(db, { actor })).find((a) => a.name === name && a.isOnline && a.hostFacts), { what: `${name} online with its facts`, timeoutMs: 30_000 });
}

const ping = (agentId: string, holdMs = 0) => sendAgentCommand(db, { actor, input: { agentId, kind: "ping", input: { holdMs }, timeoutSeconds: 60 } });

/**
 * The status a body too big is refused with. The portal answers by its declared length without
 * reading it and may close the socket while the body is still going out: read the answer
 * whenever it comes and ignore the write failing.
 */
function postOversized(url: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on("error", (error) => setTimeout(() => reject(error), 1000));
    request.end(body);
  });
}

async function commandIn(commandId: string, statuses: string[], timeoutMs = 30_000) {
  return waitFor(async () => {
    const command = await getAgentCommand(db, { actor, commandId });
    return statuses.includes(command.status) ? command : null;
  }, { what: `command in ${statuses.join("/")}`, timeoutMs });
}

/** An agent killed with SIGKILL while it runs a long ping: its name, its row and the ping. */
async function killedMidPing(prefix: string) {
  const name = `${prefix}-${crypto.randomBytes(3).toString("hex")}`;
  const agent = connectAgent(name);
  const online = await onlineAgent(name);
  const sent = await ping(online.id, 60_000);
  await commandIn(sent.id, ["running"]);
  agent.child.kill("SIGKILL");
  return { name, online, sent };
}

beforeAll(async () => {
  buildAgent();
  ({ actor } = await createOrgWithMember(db, "operator"));
  token = (await createApiToken(db, { actor, input: { name: "agent", scopes: ["write"] } })).token;
  portalPort = await freePort();
  portalHome = tempDir("portal-home");
  portal = await startPortal();
  home = tempDir("agent-home");
  const login = await runAgent(["login", "--portal", portal.url, "--token", token], { home });
  expect(login.code, login.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  for (const child of agents) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await portal?.stop();
});

describe("gantry-agent connect", () => {
  it("comes online with its host facts, answers a ping, and answers a command sent again only once", async () => {
    const name = `bench-${crypto.randomBytes(3).toString("hex")}`;
    const agent = connectAgent(name);
    const online = await onlineAgent(name);
    expect(online.hostFacts!.cpu.cores).toBeGreaterThan(0);
    expect(online.hostFacts!.memoryBytes).toBeGreaterThan(0);
    // Present or not, Python and lerobot are stated either way.
    expect(online.hostFacts!.python.version ?? online.hostFacts!.python.note).toBeTruthy();
    expect(online.hostFacts!.lerobot.version ?? online.hostFacts!.lerobot.note).toBeTruthy();
    expect(Array.isArray(online.hostFacts!.serialAdapters)).toBe(true);

    const sent = await ping(online.id);
    const done = await commandIn(sent.id, ["succeeded", "failed"]);
    expect(done.status, done.error ?? "").toBe("succeeded");
    expect(done.result).toMatchObject({ heldMs: 0 });

    // The portal sends the same command id again (as after a reconnect): the agent does not run
    // it again but answers with what it answered the first time.
    await db.agentCommand.update({ where: { id: sent.id }, data: { status: "queued", result: undefined, finishedAt: null } });
    await db.$executeRaw`SELECT pg_notify(${AGENT_COMMANDS_CHANNEL}, ${online.id})`;
    const again = await commandIn(sent.id, ["succeeded", "failed"]);
    expect(again.result).toEqual(done.result);
    expect(agent.output().split(`Running ping (${sent.id})`).length - 1).toBe(1);
  });

  it("stops a command when it is cancelled, and runs a recipe with its log arriving in order", async () => {
    const name = `recipes-${crypto.randomBytes(3).toString("hex")}`;
    const installDir = tempDir("lerobot");
    // No package index: the install step fails, saying what pip could not find.
    const agent = connectAgent(name, home, { PIP_NO_INDEX: "1", PIP_FIND_LINKS: installDir });
    const online = await onlineAgent(name);
    const held = await ping(online.id, 60_000);
    await commandIn(held.id, ["running"]);
    const cancelled = await cancelAgentCommand(db, { actor, commandId: held.id });
    expect(cancelled.status).toBe("cancelled");
    await waitFor(async () => agent.output().includes(`ping (${held.id}) failed: ping was cancelled`), { what: "the agent stopping the ping" });
    expect((await getAgentCommand(db, { actor, commandId: held.id })).status).toBe("cancelled");

    const sent = await sendAgentCommand(db, { actor, input: { agentId: online.id, kind: "recipe.run", input: { recipe: "install-lerobot", version: 1, params: { path: installDir } }, timeoutSeconds: 300 } });
    const done = await commandIn(sent.id, ["succeeded", "failed"], 120_000);
    expect(done.status, done.error ?? "").toBe("succeeded");
    expect(done.result).toMatchObject({ recipe: "install-lerobot", version: 1, outcome: "failed" });
    expect((done.result as { steps: { status: string }[] }).steps.map((x) => x.status)).toEqual(["succeeded", "succeeded", "failed", "not-run"]);
    const lines = done.log.split("\n").filter(Boolean);
    expect(lines[0]).toMatch(/^\[python\] Python 3\./);
    expect(lines.findIndex((l) => l.startsWith("[venv]"))).toBeLessThan(lines.findIndex((l) => l.startsWith("[install]")));
    expect(done.log).toMatch(/\[install\] .*No matching distribution found for lerobot/);

    // A recipe this agent does not have in that version, or with a path that leaves its folder, is refused.
    const wrongVersion = await sendAgentCommand(db, { actor, input: { agentId: online.id, kind: "recipe.run", input: { recipe: "install-lerobot", version: 99, params: {} }, timeoutSeconds: 30 } });
    expect((await commandIn(wrongVersion.id, ["succeeded", "failed"])).error).toMatch(/version 1 and the portal asked for version 99: update gantry-agent/);
    const badPath = await sendAgentCommand(db, { actor, input: { agentId: online.id, kind: "recipe.run", input: { recipe: "install-lerobot", version: 1, params: { path: "/tmp/../etc; rm -rf ~" } }, timeoutSeconds: 30 } });
    expect((await commandIn(badPath.id, ["succeeded", "failed"])).error).toMatch(/Install LeRobot: path the folder is an absolute path/);
  }, 180_000);

  it("answers the earlier plug & play endpoints through the agent, in their shapes", async () => {
    const name = `plugplay-${crypto.randomBytes(3).toString("hex")}`;
    const portsDir = tempDir("ports");
    fs.symlinkSync("/dev/null", path.join(portsDir, "ttyACM0"));
    const agent = connectAgent(name, home, { GANTRY_AGENT_PORTS_DIR: portsDir, PIP_NO_INDEX: "1", PIP_FIND_LINKS: portsDir });
    const online = await onlineAgent(name);
    const call = async (method: string, route: string, body?: unknown) => {
      const response = await fetch(`${portal.url}/api/plugplay/${route}${route.includes("?") ? "&" : "?"}agent=${name}`, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, ...(body ? { body: JSON.stringify(body) } : {}) });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const info = await call("GET", "system-info");
    expect(info.status).toBe(200);
    expect(info.body).toMatchObject({ os: online.hostFacts!.os, agent: name, agent_online: true });
    expect(typeof info.body.lerobot_installed).toBe("boolean");
    const ports = await call("GET", "list-ports");
    expect(ports.body).toMatchObject({ success: true, ports: [{ device: path.join(portsDir, "ttyACM0"), hwid: "n/a" }] });

    // Ports go to the agent's leader and follower arms.
    const noArm = await call("POST", "save-port-config", { follower_port: "/dev/ttyACM0" });
    expect(noArm.status).toBe(409);
    expect(JSON.stringify(noArm.body), JSON.stringify(noArm.body)).toMatch(/has no follower arm yet: add it on the Robots page/);
    const follower = await createRobot(db, { actor, input: { agentId: online.id, name: `${name}_follower`, type: "so101_follower", port: null } });
    const leader = await createRobot(db, { actor, input: { agentId: online.id, name: `${name}_leader`, type: "so101_leader", port: null } });
    expect((await call("POST", "save-port-config", { follower_port: "/dev/ttyACM0", leader_port: "/dev/ttyACM1" })).body).toMatchObject({ success: true, follower_port: "/dev/ttyACM0", leader_port: "/dev/ttyACM1" });
    expect((await getRobot(db, { actor, robotId: follower.id })).port).toBe("/dev/ttyACM0");
    expect((await getRobot(db, { actor, robotId: leader.id })).port).toBe("/dev/ttyACM1");
    const badPort = await call("POST", "save-port-config", { follower_port: "ttyACM0; reboot" });
    expect(badPort.status).toBe(400);

    // Installation: the Install LeRobot recipe, followed and cancelled through the old endpoints.
    expect((await call("GET", "installation-status")).body).toMatchObject({ active: false, status: "idle" });
    const started = await call("POST", "start-installation", { installation_path: tempDir("lerobot"), selected_robot: "koch" });
    expect(started.body).toMatchObject({ success: true, status: "started" });
    expect((await call("POST", "start-installation", {})).status).toBe(409);
    const finished = await waitFor(async () => {
      const s = (await call("GET", "installation-status")).body;
      return s.active === false && s.status !== "idle" ? s : null;
    }, { what: "the installation to end", timeoutMs: 120_000 });
    expect(finished).toMatchObject({ status: "failed", running: false });
    expect(String(finished.error)).toMatch(/^Install lerobot: /);
    expect((finished.logs as string[]).some((l) => /No matching distribution found for lerobot/.test(l))).toBe(true);
    expect((await call("POST", "cancel-installation")).body).toEqual({ success: false, message: "No installation in progress" });
    expect((await call("POST", "start-installation", { installation_path: "../../etc" })).status).toBe(400);
    agent.child.kill("SIGTERM");
  }, 180_000);

  it("fails the command it was running, saying so, when the agent is killed, and shows it offline", async () => {
    const { name, online, sent } = await killedMidPing("killed");
    const failed = await commandIn(sent.id, ["failed", "succeeded"]);
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatch(new RegExp(`agent ${name} disconnected while running ping`));
    // Well before its 60 s deadline: the grace, not the deadline, ended it.
    expect(failed.finishedAt!.getTime() - Date.now()).toBeLessThan(60_000);
    const after = (await listAgents(db, { actor })).find((a) => a.id === online.id)!;
    expect(after.isOnline).toBe(false);
    expect(after.lastSeenAt).not.toBeNull();
  });

  it("says a command it was running was interrupted when it is restarted, instead of running it again", async () => {
    const { name, online, sent } = await killedMidPing("restarted");
    // Back within the portal's grace (a service restarted): the portal sends the command again.
    const second = connectAgent(name);
    const ended = await commandIn(sent.id, ["failed", "succeeded"]);
    expect(ended.status).toBe("failed");
    expect(ended.error).toBe("The agent was restarted while it ran ping, so it was not finished; run it again");
    expect(second.output()).not.toContain(`Running ping (${sent.id})`);
    // A new command runs as ever.
    const next = await ping(online.id);
    expect((await commandIn(next.id, ["succeeded", "failed"])).status).toBe("succeeded");
    second.child.kill("SIGTERM");
  });

  it("reconnects with backoff when the portal goes away mid-command, and the command ends with its result", async () => {
    const name = `restart-${crypto.randomBytes(3).toString("hex")}`;
    const agent = connectAgent(name);
    const online = await onlineAgent(name);
    const sent = await ping(online.id, 1500);
    await commandIn(sent.id, ["running"]);
    await portal.stop();
    // The agent finishes the ping while the portal is down, then finds it again.
    await waitFor(async () => /connecting again in/.test(agent.output()), { what: "the agent noticing", timeoutMs: 15_000 });
    portal = await startPortal();
    // Nobody looks at the command while the portal is down (looking would end it once the grace
    // is over, which the test before this one shows): the agent comes back and it resumes.
    await waitFor(async () => (await listAgents(db, { actor })).find((a) => a.id === online.id && a.isOnline), { what: "back online", timeoutMs: 30_000 });
    const done = await commandIn(sent.id, ["succeeded", "failed"]);
    expect(done.status, done.error ?? "").toBe("succeeded");
    expect(done.result).toMatchObject({ heldMs: 1500 });
    // (The row says online as soon as the portal opens the stream, a moment before the agent hears hello.)
    await waitFor(async () => (agent.output().match(/Connected to /g) ?? []).length >= 2, { what: "the agent saying it reconnected" });
  });

  it("is cut off when its token is revoked, and stops saying why", async () => {
    const made = await createApiToken(db, { actor, input: { name: "soon revoked", scopes: ["write"] } });
    const revokedHome = tempDir("agent-home");
    expect((await runAgent(["login", "--portal", portal.url, "--token", made.token], { home: revokedHome })).code).toBe(0);
    const name = `revoked-${crypto.randomBytes(3).toString("hex")}`;
    const agent = connectAgent(name, revokedHome);
    const online = await onlineAgent(name);
    const exited = new Promise<number | null>((resolve) => agent.child.once("exit", (code) => resolve(code)));
    await revokeApiToken(db, { actor, tokenId: made.id });
    expect(await exited).toBe(1);
    expect(agent.output()).toMatch(/revoked/);
    expect((await listAgents(db, { actor })).find((a) => a.id === online.id)!.isOnline).toBe(false);
  });

  it("refuses malformed and oversized messages with a 4xx that says why, and stores nothing", async () => {
    const [agent] = (await listAgents(db, { actor })).filter((a) => a.hostFacts);
    const before = await db.agent.findUniqueOrThrow({ where: { id: agent.id } });
    const post = (body: string, headers: Record<string, string> = {}) =>
      fetch(`${portal.url}/api/agents/messages`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...headers }, body });
    const notJson = await post("{facts");
    expect(notJson.status).toBe(400);
    expect(await notJson.text()).toMatch(/not valid JSON/);
    const wrongShape = await post(JSON.stringify({ type: "facts", agentId: agent.id, facts: { hostname: 7 } }));
    expect(wrongShape.status).toBe(400);
    expect(await wrongShape.text()).toMatch(/facts\.hostname/);
    const unknownType = await post(JSON.stringify({ type: "reboot", agentId: agent.id }));
    expect(unknownType.status).toBe(400);
    expect(await postOversized(`${portal.url}/api/agents/messages`, JSON.stringify({ type: "facts", agentId: agent.id, facts: { hostname: "x".repeat(300 * 1024) } }))).toBe(413);
    const noToken = await fetch(`${portal.url}/api/agents/messages`, { method: "POST", body: "{}" });
    expect(noToken.status).toBe(401);
    const badName = await fetch(`${portal.url}/api/agents/connect?name=${encodeURIComponent("../etc")}`, { headers: { authorization: `Bearer ${token}` } });
    expect(badName.status).toBe(400);
    // Another organisation's agent is not there at all for this token.
    const other = await createOrgWithMember(db, "owner");
    const theirs = await db.agent.create({ data: { orgId: other.orgId, name: "theirs" } });
    const foreign = await post(JSON.stringify({ type: "facts", agentId: theirs.id, facts: before.hostFacts }));
    expect(foreign.status).toBe(404);
    expect((await db.agent.findUniqueOrThrow({ where: { id: theirs.id } })).hostFacts).toBeNull();
    const after = await db.agent.findUniqueOrThrow({ where: { id: agent.id } });
    expect(after.hostFacts).toEqual(before.hostFacts);
  });
});
