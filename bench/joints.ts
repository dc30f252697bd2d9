import { SerialPort } from "serialport";
import { buildFeetech } from "../agent/hardware/feetech";
import { MotorBus } from "../agent/hardware/motor-bus";
import { MotorBusSim } from "../tests/helpers/motor-bus-sim";
import { compare, printResults, type BenchResult } from "./lib/stats";

// `npx tsx bench/joints.ts` — the motor bus on the simulator over a socat pty:
//   joints: sync reads of six STS3215 positions per second, against the bus's floor — the bits
//           one such read puts on a 1 Mbaud wire (request and six replies, 10 bits a byte);
//   scan:   pinging ids 0..252 at 1 Mbaud with a 10 ms timeout, against a minimal script that
//           writes each ping and waits for its six bytes with the same timeout and nothing else.
// Both run against the same simulator, whose motors have LeRobot's configured return delay (0).
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
  printResults("joints", results);
}

await main();
