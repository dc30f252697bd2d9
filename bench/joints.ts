import { SerialPort } from "serialport";
import { buildFeetech } from "../agent/hardware/feetech";
import { MotorBus } from "../agent/hardware/motor-bus";
import { MotorBusSim } from "../tests/helpers/motor-bus-sim";
import { spawn, type ChildProcess } from "node:child_process";
import { compare, percentile, printResults, type BenchResult } from "./lib/stats";

// `npx tsx bench/joints.ts` — the motor bus on the simulator over a socat pty:
//   joints: sync reads of six STS3215 positions per second, against the bus's floor — the bits
//           one such read puts on a 1 Mbaud wire (request and six replies, 10 bits a byte);
//   scan:   pinging ids 0..252 at 1 Mbaud with a 10 ms timeout, against a minimal script that
//           writes each ping and waits for its six bytes with the same timeout and nothing else.
//   live:   the agent (the bundle users run, connected to the portal's real route handlers and
//           Postgres) streams joints.stream readings; a subscriber on the portal's event stream
//           measures how many readings a second reach it, against the rate the agent read the
//           bus at, and how long each took from its bus read to the subscriber (p95), against
//           the agent's 20 ms batching interval.
// All run against the same simulator, whose motors have LeRobot's configured return delay (0).
// The simulator answers from this same process, so its own work is inside our figures. A pty
// takes no wire time, so our reads can outrun the floor: the ratio says how near our own costs
// let a real 1 Mbaud bus come to its limit.

const READS = 2000;
const SCAN_TIMEOUT_MS = 10;
const IDS = [1, 2, 3, 4, 5, 6];
const now = () => Number(process.hrtime.bigint()) / 1e6;

async function minimalScan(path: string): Promise<number[]> {
  const port = new SerialPort({ path, baudRate: 1_000_000, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  let buf = Buffer.alloc(0);
  let wake: (() => void) | null = null;
  port.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    wake?.();
  });
  const found: number[] = [];
  for (let id = 0; id <= 252; id++) {
    buf = Buffer.alloc(0);
    port.write(buildFeetech.ping(id));
    const deadline = now() + SCAN_TIMEOUT_MS;
    while (buf.length < 6 && now() < deadline) await new Promise<void>((r) => { const t = setTimeout(r, Math.max(1, deadline - now())); wake = () => { clearTimeout(t); r(); }; });
    if (buf.length >= 6) found.push(buf[2]!);
  }
  await new Promise<void>((r) => port.close(() => r()));
  return found;
}

async function main() {
  const sim = await MotorBusSim.start({ protocol: "feetech", motors: IDS.map((id) => ({ id, returnDelay: 0, position: 1000 + id })) });
  const results: BenchResult[] = [];
  try {
    // A generous reply timeout: a stall of the shared machine must not end the run; it costs nothing when replies come.
    const bus = await MotorBus.open(sim.hostPath, { protocol: "feetech", onLineBaud: sim.setLineBaud, timeoutMs: 500 });
    for (let i = 0; i < 100; i++) await bus.syncReadPositions(IDS);
    const t0 = now();
    for (let i = 0; i < READS; i++) await bus.syncReadPositions(IDS);
    const readsPerSecond = READS / ((now() - t0) / 1000);
    const wireBytes = buildFeetech.syncRead(IDS, 56, 2).length + IDS.length * 8;
    const floor = 1_000_000 / (wireBytes * 10);
    results.push(compare(`sync read of ${IDS.length} positions vs the 1 Mbaud wire (${wireBytes} bytes)`, readsPerSecond, floor, "reads/s", "≥ 500 reads/s"));

    const s0 = now();
    const { found } = await bus.scan({ bauds: [1_000_000], timeoutMs: SCAN_TIMEOUT_MS });
    const ours = (now() - s0) / 1000;
    await bus.close();
    const m0 = now();
    const minimal = await minimalScan(sim.hostPath);
    const reference = (now() - m0) / 1000;
    if (found.length !== IDS.length || minimal.length !== IDS.length) throw new Error(`scan found ${found.length}, the minimal script ${minimal.length} motors; expected ${IDS.length}`);
    results.push(compare(`scan ids 0-252 at 1 Mbaud (${SCAN_TIMEOUT_MS} ms timeout) vs a minimal ping script`, ours, reference, "s", "≤ 2×"));
  } finally {
    await sim.stop();
  }
  results.push(...(await liveStream()));
  printResults("joints", results);
}

const LIVE_HZ = 150;
const LIVE_MS = 6000;

/** Readings through the whole path: agent → portal (NOTIFY) → a subscriber's event stream. */
async function liveStream(): Promise<BenchResult[]> {
  const { createTestDatabase } = await import("../tests/setup/test-database");
  const database = await createTestDatabase("bench_joints");
  process.env.DATABASE_URL = database.url;
  const { createDb } = await import("../server/db");
  const { createOrgWithMember, waitFor } = await import("../tests/helpers/factories");
  const { createApiToken } = await import("../server/auth/tokens.service");
  const { listAgents, sendAgentCommand, getAgentCommand } = await import("../server/hardware/commands.service");
  const { AGENT_BUNDLE, buildAgent, runAgent, startTestPortal, tempDir } = await import("../agent/test-helpers");
  const db = createDb(database.url, 4);
  const sim = await MotorBusSim.start({ protocol: "feetech", motors: IDS.map((id) => ({ id, returnDelay: 0, position: 1000 + id })), followHostBaud: true });
  const portal = await startTestPortal({ DATABASE_URL: database.url, GANTRY_HOME: tempDir("bench-portal") });
  const home = tempDir("bench-agent");
  let agent: ChildProcess | null = null;
  try {
    buildAgent();
    const { actor } = await createOrgWithMember(db, "operator");
    const { token } = await createApiToken(db, { actor, input: { name: "bench", scopes: ["write"] } });
    const login = await runAgent(["login", "--portal", portal.url, "--token", token], { home });
    if (login.code !== 0) throw new Error(`agent login failed: ${login.stderr}`);
    agent = spawn(process.execPath, [AGENT_BUNDLE, "connect", "--name", "bench-arm-pc", "--ports-dir", sim.dir], { env: { ...process.env, GANTRY_AGENT_HOME: home }, stdio: "ignore" });
    const online = await waitFor(async () => (await listAgents(db, { actor })).find((a) => a.isOnline), { what: "the agent online", timeoutMs: 30_000 });
    const motors = IDS.map((id, i) => ({ name: ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"][i]!, id }));
    const command = await sendAgentCommand(db, { actor, input: { agentId: online.id, kind: "joints.stream", input: { port: sim.hostPath, protocol: "feetech", motors, hz: LIVE_HZ, durationMs: LIVE_MS }, timeoutSeconds: 60 } });
    // The subscriber: the portal's event stream, as a script or another page would read it.
    const response = await fetch(`${portal.url}/api/agents/commands/${command.id}/samples`, { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" } });
    if (!response.ok || !response.body) throw new Error(`subscribing failed: HTTP ${response.status} ${await response.text()}`);
    const arrivals: { t: number; at: number }[] = [];
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      const at = Date.now();
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      let isEnded = false;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (!data || !/^event: joints$/m.test(block)) continue;
        const event = JSON.parse(data) as { type: string; samples?: { t: number }[] };
        if (event.type === "ended") isEnded = true;
        for (const sample of event.samples ?? []) arrivals.push({ t: sample.t, at });
      }
      if (isEnded) break;
    }
    const done = await getAgentCommand(db, { actor, commandId: command.id });
    if (done.status !== "succeeded") throw new Error(`joints.stream ended ${done.status}: ${done.error}`);
    const agentHz = (done.result as { hz: number }).hz;
    // The first second is warm-up (the subscription opens while the agent starts reading).
    const steady = arrivals.filter((a) => a.t >= arrivals[0]!.t + 1000);
    const rate = (steady.length - 1) / ((steady.at(-1)!.t - steady[0]!.t) / 1000);
    const latencies = steady.map((a) => a.at - a.t);
    return [
      compare(`live joints reaching a subscriber (asked ${LIVE_HZ} Hz) vs the agent's bus reads`, rate, agentHz, "Hz", "≥ 100 Hz"),
      compare("live joints, bus read → subscriber p95 vs the agent's batching interval", percentile(latencies, 95), 20, "ms", "≤ 50 ms"),
    ];
  } finally {
    agent?.kill("SIGTERM");
    await portal.stop();
    await sim.stop();
    await db.$disconnect();
    await database.drop();
  }
}

await main();
