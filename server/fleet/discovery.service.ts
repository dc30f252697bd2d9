import net from "node:net";
import type { z } from "zod";
import type { Tx } from "../db";
import { AppError } from "../errors";
import { checkAddress, outboundSettings } from "../security/outbound";
import type { discoveredHostSchema, discoverInput } from "./fleet.schemas";

// Finds SSH servers in a range a person typed: IPv4 only, at most MAX_ADDRESSES addresses,
// CONCURRENCY connections at a time, each given up after the timeout. An address counts when
// it answers with an SSH banner; nothing is sent to it and no credential is tried. A range
// that holds an address the outbound policy refuses (loopback, link-local, metadata) is
// refused whole, before anything is scanned.

export const MAX_ADDRESSES = 1024;
const CONCURRENCY = 64;

const toInt = (ip: string) => ip.split(".").reduce((n, part) => n * 256 + Number(part), 0);
const toIp = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");

/** "10.0.0.0/28", "10.0.0.5-10.0.0.9", "10.0.0.5-9" or one address → addresses. */
export function parseRange(range: string): string[] {
  const bad = () => new AppError("BAD_REQUEST", `"${range}" is not a range: use 192.168.1.0/24, 192.168.1.10-192.168.1.40 or one address`);
  const isIp = (s: string) => net.isIPv4(s);
  let first: number;
  let last: number;
  const cidr = /^([\d.]+)\/(\d{1,2})$/.exec(range);
  const dash = /^([\d.]+)\s*-\s*([\d.]+)$/.exec(range);
  if (cidr) {
    const bits = Number(cidr[2]);
    if (!isIp(cidr[1]) || bits > 32) throw bad();
    const size = 2 ** (32 - bits);
    first = Math.floor(toInt(cidr[1]) / size) * size;
    last = first + size - 1;
  } else if (dash) {
    const end = dash[2].includes(".") ? dash[2] : dash[1].replace(/\d+$/, dash[2]);
    if (!isIp(dash[1]) || !isIp(end)) throw bad();
    first = toInt(dash[1]);
    last = toInt(end);
  } else if (isIp(range)) {
    first = last = toInt(range);
  } else throw bad();
  if (last < first) throw bad();
  if (last - first + 1 > MAX_ADDRESSES) throw new AppError("BAD_REQUEST", `${range} holds ${last - first + 1} addresses; scan at most ${MAX_ADDRESSES} at a time (a /22)`);
  return Array.from({ length: last - first + 1 }, (_, i) => toIp(first + i));
}

/** The SSH banner of host:port, or null when nothing answers in time. */
export function readSshBanner(host: string, port: number, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let data = "";
    const done = (banner: string | null) => {
      socket.destroy();
      resolve(banner);
    };
    socket.setTimeout(timeoutMs, () => done(null));
    socket.on("error", () => done(null));
    socket.on("data", (chunk) => {
      data += chunk.toString("latin1");
      const line = data.split(/\r?\n/).find((l) => l.startsWith("SSH-"));
      if (line) done(line.slice(0, 200));
      else if (data.length > 4096) done(null);
    });
  });
}

export async function discoverSshHosts(tx: Tx, { orgId, input }: { orgId: string; input: z.infer<typeof discoverInput> }): Promise<z.infer<typeof discoveredHostSchema>[]> {
  const addresses = parseRange(input.range);
  const settings = outboundSettings();
  for (const address of addresses) {
    checkAddress(address, "discovery", { settings, lead: addresses.length === 1 ? `${address} is` : `The range ${input.range} includes ${address},` });
  }
  const found: { host: string; banner: string }[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, addresses.length) }, async () => {
      while (next < addresses.length) {
        const host = addresses[next++];
        const banner = await readSshBanner(host, input.port, input.timeoutMs);
        if (banner) found.push({ host, banner });
      }
    }),
  );
  const known = await tx.device.findMany({ where: { orgId, port: input.port, host: { in: found.map((f) => f.host) } }, select: { id: true, host: true } });
  return found
    .sort((a, b) => toInt(a.host) - toInt(b.host))
    .map((f) => ({ host: f.host, port: input.port, banner: f.banner, knownDeviceId: known.find((k) => k.host === f.host)?.id ?? null }));
}
