import { setTimeout as sleep } from "node:timers/promises";
import type { z } from "zod";
import type { commandInputSchemas, commandResultSchemas } from "../../server/hardware/hardware.schemas";
import type { CommandContext, CommandRegistry } from "../commands";
import type { MotorBus, MotorProtocol } from "./motor-bus";

// What the motor commands share: a bus opened for one command and always closed after it, and
// the loop that reads the arm's joints at a steady rate.

export type HardwareCommandKind = keyof typeof commandResultSchemas;
export type HardwareInput<K extends HardwareCommandKind> = z.output<(typeof commandInputSchemas)[K]>;
export type HardwareResult<K extends HardwareCommandKind> = z.input<(typeof commandResultSchemas)[K]>;

/** Registers `kind` with its input schema; the handler's answer is typed by the result schema the pages parse. */
export function registerHardware<K extends HardwareCommandKind>(registry: CommandRegistry, kind: K, schema: z.ZodType<HardwareInput<K>>, run: (input: HardwareInput<K>, ctx: CommandContext) => Promise<HardwareResult<K>>): void {
  registry.register(kind, { input: schema, run });
}

/**
 * How long one request waits for its motor. Generous: a USB adapter's latency timer adds up to
 * 16 ms, and an answer that never comes costs this once, not per reading.
 */
const BUS_TIMEOUT_MS = 200;

/**
 * Opens the bus for one command and closes it whatever happens, so the port is free for
 * LeRobot or the next command. motor-bus is loaded here, not at start-up: it needs serialport,
 * which the agent's bundle leaves out and a host without motors may not have (its open error
 * already says how to install it, and why a port will not open).
 */
export async function withBus<T>(port: string, protocol: MotorProtocol, signal: AbortSignal, work: (bus: MotorBus) => Promise<T>): Promise<T> {
  signal.throwIfAborted();
  const { MotorBus } = await import("./motor-bus");
  const bus = await MotorBus.open(port, { protocol, timeoutMs: BUS_TIMEOUT_MS });
  try {
    return await work(bus);
  } finally {
    await bus.close();
  }
}

/** A problem on the bus (no answer, a bad reply…), as opposed to a port that is gone or a bug. */
export function isBusError(error: unknown): error is Error & { code: string; id?: number } {
  return error instanceof Error && error.name === "MotorBusError";
}

/** Whether the command's signal was aborted by its deadline rather than by the agent stopping. */
export function isDeadline(signal: AbortSignal): boolean {
  return signal.aborted && (signal.reason as { name?: string } | undefined)?.name === "TimeoutError";
}

/** Failed sync reads in a row before a joint stream gives up: a single garbled reply is noise. */
const READ_RETRIES = 3;

/**
 * Sync-reads the positions of `ids` every 1/hz s until `durationMs` has passed or the command's
 * deadline aborts it; both end the loop normally (a stream's natural end is its deadline). The
 * agent stopping throws. A reading that falls behind is skipped, never made up in a burst.
 */
export async function readJointsAt(bus: MotorBus, ids: number[], { hz, durationMs, signal }: { hz: number; durationMs: number; signal: AbortSignal }, onRead: (raw: number[]) => void): Promise<{ samples: number; hz: number }> {
  const start = performance.now();
  const end = start + durationMs;
  const period = 1000 / hz;
  let next = start;
  let samples = 0;
  let failures = 0;
  while (performance.now() < end) {
    if (signal.aborted) {
      if (isDeadline(signal)) break;
      signal.throwIfAborted();
    }
    try {
      const positions = await bus.syncReadPositions(ids);
      failures = 0;
      samples++;
      onRead(ids.map((id) => positions.get(id)!));
    } catch (error) {
      if (!isBusError(error) || ++failures > READ_RETRIES) throw error;
    }
    next += period;
    const now = performance.now();
    if (next < now) next = now;
    const wait = Math.min(next, end) - now;
    if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => {});
  }
  const seconds = (performance.now() - start) / 1000;
  return { samples, hz: seconds > 0 ? Math.round((samples / seconds) * 10) / 10 : 0 };
}
