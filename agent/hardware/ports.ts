// Serial ports with what tells them apart: the by-id link, the USB adapter's VID:PID, serial
// number and maker, read from sysfs. The folders are options so tests can list a folder of
// links, as LeRobot's find-port globs /dev/tty*.
import fs from "node:fs";
import path from "node:path";

export type SerialPortInfo = {
  path: string;
  /** The device the path resolves to, e.g. /dev/ttyACM0. */
  device: string;
  byId: string | null;
  vendorId: string | null;
  productId: string | null;
  serialNumber: string | null;
  manufacturer: string | null;
  product: string | null;
  /** A name for the adapter when its VID:PID is a known one. */
  adapter: string | null;
};

export const KNOWN_ADAPTERS: Record<string, string> = {
  "1a86:7523": "CH340",
  "1a86:5523": "CH341",
  "1a86:55d3": "CH343 (Feetech/Waveshare bus board)",
  "1a86:55d4": "CH9102",
  "0403:6001": "FTDI FT232R",
  "0403:6014": "FTDI FT232H (ROBOTIS U2D2)",
  "10c4:ea60": "CP210x",
};

export type PortListOptions = { devDir?: string; byIdDir?: string; sysDir?: string; patterns?: RegExp };

const SERIAL_NAMES = /^tty(USB|ACM|AMA|THS|S)\d+$|^ttyACM\d+$|^cu\.|^tty\.usb/;

export function listSerialPorts({ devDir = "/dev", byIdDir = path.join(devDir, "serial/by-id"), sysDir = "/sys/class/tty", patterns = SERIAL_NAMES }: PortListOptions = {}): SerialPortInfo[] {
  const byId = new Map<string, string>();
  for (const name of safeReaddir(byIdDir)) {
    const link = path.join(byIdDir, name);
    const target = safeRealpath(link);
    if (target) byId.set(target, link);
  }
  const out: SerialPortInfo[] = [];
  for (const name of safeReaddir(devDir).sort()) {
    if (!patterns.test(name)) continue;
    const p = path.join(devDir, name);
    const device = safeRealpath(p);
    if (!device) continue;
    // Built-in UARTs (ttyS*) exist on every PC; only list those with a device behind them.
    const usb = readUsbAttributes(path.join(sysDir, path.basename(device)));
    if (/^ttyS\d+$/.test(path.basename(device)) && !usb.vendorId && !byId.has(device)) continue;
    out.push({ path: p, device, byId: byId.get(device) ?? null, ...usb, adapter: usb.vendorId ? (KNOWN_ADAPTERS[`${usb.vendorId}:${usb.productId}`] ?? null) : null });
  }
  return out;
}

/** Walks up from /sys/class/tty/<name>/device to the USB device that has idVendor. */
function readUsbAttributes(ttySys: string): Pick<SerialPortInfo, "vendorId" | "productId" | "serialNumber" | "manufacturer" | "product"> {
  const empty = { vendorId: null, productId: null, serialNumber: null, manufacturer: null, product: null };
  let dir = safeRealpath(path.join(ttySys, "device"));
  for (let i = 0; dir && i < 6; i++, dir = path.dirname(dir)) {
    const vendorId = readAttr(dir, "idVendor");
    if (vendorId) return { vendorId, productId: readAttr(dir, "idProduct"), serialNumber: readAttr(dir, "serial"), manufacturer: readAttr(dir, "manufacturer"), product: readAttr(dir, "product") };
  }
  return empty;
}

function readAttr(dir: string, name: string): string | null {
  try {
    return fs.readFileSync(path.join(dir, name), "utf8").trim() || null;
  } catch {
    return null;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function safeRealpath(p: string): string | null {
  try {
    return fs.realpathSync(p);
  } catch {
    return null;
  }
}

/**
 * The port that was there before and is gone now: LeRobot's "unplug the arm" step. Null when
 * none or more than one disappeared, with the reason.
 */
export { findUnpluggedPort } from "../../server/hardware/port-diff";

/** Which processes hold `device` open, from /proc/<pid>/fd links. */
export function findPortHolders(device: string, procDir = "/proc"): { pid: number; command: string }[] {
  const target = safeRealpath(device) ?? device;
  const out: { pid: number; command: string }[] = [];
  for (const entry of safeReaddir(procDir)) {
    if (!/^\d+$/.test(entry)) continue;
    const fdDir = path.join(procDir, entry, "fd");
    for (const fd of safeReaddir(fdDir)) {
      let link: string;
      try {
        link = fs.readlinkSync(path.join(fdDir, fd));
      } catch {
        continue;
      }
      if (link === target) {
        out.push({ pid: Number(entry), command: readAttr(path.join(procDir, entry), "comm") ?? "?" });
        break;
      }
    }
  }
  return out;
}

export function isBrlttyRunning(procDir = "/proc"): boolean {
  return safeReaddir(procDir).some((e) => /^\d+$/.test(e) && readAttr(path.join(procDir, e), "comm") === "brltty");
}

/** A sentence a person can act on for a port that would not open. */
export async function explainOpenError(portPath: string, err: unknown, { procDir = "/proc", sysDir = "/sys/class/tty" }: { procDir?: string; sysDir?: string } = {}): Promise<string> {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: string } | null)?.code ?? /\b(EACCES|EBUSY|ENOENT|EPERM)\b/.exec(message)?.[1] ?? (/Cannot lock port|Resource temporarily unavailable/.test(message) ? "EBUSY" : undefined);
  if (code === "EACCES" || code === "EPERM" || /Permission denied/.test(message))
    return `Cannot open ${portPath}: permission denied. Add this user to the dialout group (sudo usermod -aG dialout $USER), then log out and back in.`;
  if (code === "ENOENT" || /No such file/.test(message)) {
    const usb = readUsbAttributes(path.join(sysDir, path.basename(portPath)));
    const ch34x = usb.vendorId === "1a86" || /ch34/i.test(message);
    const hint = isBrlttyRunning(procDir)
      ? " brltty is running and takes CH340/CH341 adapters for braille displays, which makes their port vanish: remove it with sudo apt remove brltty, then plug the arm in again."
      : ch34x
        ? " A CH340/CH341 port that vanishes is often taken by brltty (a braille display service): if it is installed, remove it with sudo apt remove brltty."
        : " Check the cable, and list the ports again to find the arm's.";
    return `Cannot open ${portPath}: it does not exist.${hint}`;
  }
  if (code === "EBUSY") {
    const holders = findPortHolders(portPath, procDir);
    // This agent itself: another of its commands (live joints, a range recording) has the port.
    if (holders.some((h) => h.pid === process.pid)) return `Cannot open ${portPath}: this agent is using it for another command (live joints or a range recording): stop that first, or wait for it to end.`;
    const who = holders.length ? ` It is held by ${holders.map((h) => `${h.command} (pid ${h.pid})`).join(", ")}.` : "";
    const brltty = holders.some((h) => h.command === "brltty") ? " brltty takes CH340/CH341 adapters for braille displays: sudo apt remove brltty." : " Close the other program (another agent, a LeRobot script, a serial monitor) and try again.";
    return `Cannot open ${portPath}: another program has it open.${who}${brltty}`;
  }
  return `Cannot open ${portPath}: ${message}`;
}
