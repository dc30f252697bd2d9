import { execFileSync } from "node:child_process";

// A simulated device's network: a namespace of its own joined to this one by a veth pair on a
// private /30, each end's egress shaped by a token bucket (tc tbf), so traffic both ways goes
// at the link's rate, as to a board on a LAN. Needs root and iproute2.
//
// Names carry this process's pid (namespace gantry-rig-<pid>-<i>, links grt<pid>h<i> and
// grt<pid>d<i>), so what a killed earlier run left behind is recognised and removed at the
// next start, and a run going on in another process is left alone.

const PREFIX = "gantry-rig-";
const LINK_PREFIX = "grt";

export interface ShapedLink {
  namespace: string;
  /** This side's address, and the device's, on their /30. */
  hostAddress: string;
  deviceAddress: string;
  /** Argument list that runs a command inside the namespace: [...inNamespace, "cmd", ...]. */
  inNamespace: string[];
}

const ip = (...args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Stops what runs in a namespace (sshd and its sessions) and removes it, with its veth pair. */
export function removeNamespace(namespace: string): void {
  let pids: number[] = [];
  try {
    pids = ip("netns", "pids", namespace).split("\n").filter(Boolean).map(Number);
  } catch {
    return; // already gone
  }
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // exited meanwhile
    }
  }
  // Deleting this side's end takes the pair at once (a namespace's own links go later, in the background).
  const [, pid, i] = /^gantry-rig-(\d+)-(\d+)$/.exec(namespace) ?? [];
  if (pid) {
    try {
      ip("link", "del", `${LINK_PREFIX}${pid}h${i}`);
    } catch {
      // already gone
    }
  }
  try {
    ip("netns", "del", namespace);
  } catch {
    // already gone
  }
}

/** Removes namespaces and links left by runs whose process is gone. */
export function removeStaleLinks(): void {
  const namespaces = ip("netns", "list").split("\n").map((l) => l.split(" ")[0]).filter((n) => n.startsWith(PREFIX));
  for (const ns of namespaces) {
    const pid = Number(/^gantry-rig-(\d+)-/.exec(ns)?.[1]);
    if (pid && !isAlive(pid)) removeNamespace(ns);
  }
  // A pair whose device end never reached its namespace (a run stopped during setup).
  const links = ip("-o", "link", "show").split("\n").map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1]).filter((n): n is string => Boolean(n?.startsWith(LINK_PREFIX)));
  for (const link of links) {
    const pid = Number(/^grt(\d+)[hd]\d+$/.exec(link)?.[1]);
    if (pid && !isAlive(pid)) {
      try {
        ip("link", "del", link);
      } catch {
        // its peer's removal took it
      }
    }
  }
}

/** A /24 under 10.213.0.0/16 that no interface here uses. */
function freeSubnet(): string {
  const used = ip("-o", "-4", "addr", "show");
  for (let k = process.pid % 256, n = 0; n < 256; n++, k = (k + 1) % 256) {
    if (!used.includes(` 10.213.${k}.`)) return `10.213.${k}`;
  }
  throw new Error("No free 10.213.x.0/24 for the simulated devices' links");
}

function shape(namespace: string | null, dev: string, rateMbit: number): void {
  // burst: a few full-size segments at this rate; latency bounds the queue (and so the RTT it adds).
  execFileSync("tc", [...(namespace ? ["-n", namespace] : []), "qdisc", "replace", "dev", dev, "root", "tbf", "rate", `${rateMbit}mbit`, "burst", "128kb", "latency", "50ms"], { stdio: ["ignore", "pipe", "pipe"] });
}

/** Creates `count` namespaces with shaped links; on any failure removes what it made and throws. */
export function createShapedLinks(count: number, { rateMbit }: { rateMbit: number }): ShapedLink[] {
  if (count > 63) throw new Error("At most 63 shaped links (one /24 of /30s)");
  removeStaleLinks();
  const subnet = freeSubnet();
  const links: ShapedLink[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const namespace = `${PREFIX}${process.pid}-${i}`;
      const hostEnd = `${LINK_PREFIX}${process.pid}h${i}`;
      const deviceEnd = `${LINK_PREFIX}${process.pid}d${i}`;
      const hostAddress = `${subnet}.${4 * i + 1}`;
      const deviceAddress = `${subnet}.${4 * i + 2}`;
      const inNamespace = ["ip", "netns", "exec", namespace];
      ip("netns", "add", namespace);
      links.push({ namespace, hostAddress, deviceAddress, inNamespace });
      ip("link", "add", hostEnd, "type", "veth", "peer", "name", deviceEnd);
      ip("link", "set", deviceEnd, "netns", namespace);
      ip("addr", "add", `${hostAddress}/30`, "dev", hostEnd);
      ip("link", "set", hostEnd, "up");
      ip("-n", namespace, "addr", "add", `${deviceAddress}/30`, "dev", deviceEnd);
      ip("-n", namespace, "link", "set", deviceEnd, "up");
      ip("-n", namespace, "link", "set", "lo", "up");
      shape(null, hostEnd, rateMbit);
      shape(namespace, deviceEnd, rateMbit);
    }
  } catch (error) {
    for (const link of links) removeNamespace(link.namespace);
    for (let i = 0; i < count; i++) {
      try {
        ip("link", "del", `${LINK_PREFIX}${process.pid}h${i}`);
      } catch {
        // never made, or gone with its namespace
      }
    }
    throw error;
  }
  return links;
}
