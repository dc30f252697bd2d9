// A serial port as the motor bus sees it: write a packet, then wait for whole packets with a
// deadline. Bytes are kept until a parser consumes them, so a reply split over several reads,
// or two replies in one read, parse the same way.
import type { SerialPort } from "serialport";
import type { ParseResult, StatusPacket as StatusPacketLike } from "./packets";
import { explainOpenError } from "./ports";

export type Parser = (buf: Buffer) => ParseResult;

export class SerialLink {
  private buf: Buffer = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private closedReason: string | null = null;

  private constructor(readonly path: string, private port: SerialPort, public baud: number) {
    port.on("data", (chunk: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      this.wake?.();
    });
    port.on("close", () => {
      this.closedReason = `${path} was closed (unplugged?)`;
      this.wake?.();
    });
    port.on("error", () => {});
  }

  static async open(path: string, baud: number): Promise<SerialLink> {
    const { SerialPort } = await loadSerialport();
    const port = new SerialPort({ path, baudRate: baud, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    return new SerialLink(path, port, baud);
  }

  async setBaud(baud: number): Promise<void> {
    if (baud === this.baud) return;
    await new Promise<void>((resolve, reject) => this.port.update({ baudRate: baud }, (err) => (err ? reject(err) : resolve())));
    this.baud = baud;
  }

  /**
   * Drops what is buffered, so a late reply to an earlier request cannot answer the next one;
   * returns the whole packets among it (a scan still counts a motor that answered late).
   */
  discardInput(parse?: Parser): StatusPacketLike[] {
    const packets: StatusPacketLike[] = [];
    while (parse && this.buf.length) {
      const r = parse(this.buf);
      if (r.kind === "incomplete") break;
      this.buf = this.buf.subarray(r.consumed);
      if (r.kind === "ok") packets.push(r.packet);
    }
    this.buf = Buffer.alloc(0);
    return packets;
  }

  async send(packet: Buffer): Promise<void> {
    if (this.closedReason) throw new Error(this.closedReason);
    await new Promise<void>((resolve, reject) => this.port.write(packet, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * The next packet, a bad packet's reason, or "timeout" once `deadline` (ms since epoch,
   * performance.now clock) passes with no whole packet.
   */
  async nextPacket(parse: Parser, deadline: number): Promise<ParseResult | { kind: "timeout"; pending: number }> {
    for (;;) {
      if (this.buf.length) {
        const r = parse(this.buf);
        if (r.kind !== "incomplete") {
          this.buf = this.buf.subarray(r.consumed);
          return r;
        }
      }
      if (this.closedReason) throw new Error(this.closedReason);
      const left = deadline - performance.now();
      if (left <= 0) return { kind: "timeout", pending: this.buf.length };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.wake = null;
          resolve();
        }, Math.max(1, Math.ceil(left)));
        this.wake = () => {
          clearTimeout(timer);
          this.wake = null;
          resolve();
        };
      });
    }
  }

  /** Whether any byte arrives before `deadline`: after a reply, more bytes mean a second sender. */
  async anyMoreBytes(deadline: number): Promise<boolean> {
    while (!this.buf.length && performance.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.wake = null;
          resolve();
        }, Math.max(1, Math.ceil(deadline - performance.now())));
        this.wake = () => {
          clearTimeout(timer);
          this.wake = null;
          resolve();
        };
      });
    }
    return this.buf.length > 0;
  }

  async close(): Promise<void> {
    if (!this.port.isOpen) return;
    await new Promise<void>((resolve) => this.port.close(() => resolve()));
  }
}

// serialport's native binding is found beside its package at run time, so the agent's
// one-file bundle leaves it external (agent/build.mjs); loading it here, on first use, keeps
// every other agent command working where it is not installed.
async function loadSerialport(): Promise<typeof import("serialport")> {
  try {
    return await import("serialport");
  } catch (err) {
    throw new Error("The serialport package is not installed beside gantry-agent: run npm install serialport@13 in the agent's folder to talk to motors.", { cause: err });
  }
}

export async function openSerialLink(path: string, baud: number): Promise<SerialLink> {
  await loadSerialport();
  try {
    return await SerialLink.open(path, baud);
  } catch (err) {
    throw new Error(await explainOpenError(path, err), { cause: err });
  }
}
