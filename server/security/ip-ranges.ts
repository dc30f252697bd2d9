import net from "node:net";
import { z } from "zod";

// What kind of address an IP is, for the outbound policy (outbound.ts). Works on addresses
// as the resolver returns them (dotted quads, IPv6 text); odd IPv4 spellings such as
// 0x7f000001 or 127.1 are turned into dotted quads by the resolver before they get here.

export const addressKindSchema = z.enum(["public", "private", "loopback", "link-local", "metadata", "non-unicast"]);
export type AddressKind = z.infer<typeof addressKindSchema>;

export interface Ip {
  family: 4 | 6;
  /** The address as a number: 32 bits for IPv4, 128 for IPv6. */
  value: bigint;
}

export interface Cidr extends Ip {
  bits: number;
}

const widthOf = (family: 4 | 6) => (family === 4 ? 32 : 128);

function ipv4Value(text: string): bigint {
  return text.split(".").reduce((n, part) => (n << 8n) | BigInt(Number(part)), 0n);
}

function ipv6Value(text: string): bigint {
  let s = text;
  // A dotted IPv4 tail (::ffff:127.0.0.1) becomes two hex groups.
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (tail) {
    const v4 = ipv4Value(tail[1]);
    s = `${s.slice(0, -tail[1].length)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, rest] = s.split("::");
  const first = head ? head.split(":") : [];
  const last = rest ? rest.split(":") : [];
  const groups = rest === undefined ? first : [...first, ...Array<string>(8 - first.length - last.length).fill("0"), ...last];
  return groups.reduce((n, group) => (n << 16n) | BigInt(parseInt(group, 16)), 0n);
}

/** An IP address (brackets and an IPv6 zone are ignored), or null for anything else. */
export function parseIp(text: string): Ip | null {
  const bare = text.replace(/^\[(.*)\]$/, "$1").replace(/%.*$/, "");
  const family = net.isIP(bare);
  if (family === 4) return { family: 4, value: ipv4Value(bare) };
  if (family === 6) return { family: 6, value: ipv6Value(bare) };
  return null;
}

/** "10.0.0.0/8", or one address (a range of one). */
export function parseCidr(text: string): Cidr | null {
  const [address, bits] = text.split("/");
  const ip = parseIp(address);
  if (!ip) return null;
  const width = widthOf(ip.family);
  const n = bits === undefined ? width : Number(bits);
  return Number.isInteger(n) && n >= 0 && n <= width ? { ...ip, bits: n } : null;
}

export function isInCidr(ip: Ip, cidr: Cidr): boolean {
  if (ip.family !== cidr.family) return false;
  const shift = BigInt(widthOf(ip.family) - cidr.bits);
  return ip.value >> shift === cidr.value >> shift;
}

const cidrs = (list: string[]) => list.map((text) => parseCidr(text)!);

// Checked in order: the first range that holds an address names its kind.
const ipv4Ranges: [AddressKind, Cidr[]][] = [
  // 0.0.0.0/8 is "this host": connecting to it reaches this machine.
  ["loopback", cidrs(["0.0.0.0/8", "127.0.0.0/8"])],
  // AWS, GCP, Azure, OpenStack and others answer on 169.254.169.254; Alibaba on 100.100.100.200.
  ["metadata", cidrs(["169.254.169.254/32", "100.100.100.200/32"])],
  ["link-local", cidrs(["169.254.0.0/16"])],
  ["private", cidrs(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "198.18.0.0/15"])],
  ["non-unicast", cidrs(["224.0.0.0/4", "240.0.0.0/4"])],
];

const ipv6Ranges: [AddressKind, Cidr[]][] = [
  ["loopback", cidrs(["::/128", "::1/128"])],
  ["metadata", cidrs(["fd00:ec2::254/128"])],
  ["link-local", cidrs(["fe80::/10"])],
  ["private", cidrs(["fc00::/7", "fec0::/10"])],
  ["non-unicast", cidrs(["ff00::/8"])],
];

// IPv6 forms that carry an IPv4 address: mapped (::ffff:a.b.c.d, reaches the IPv4 address on
// this machine), compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
const embedding: [Cidr, shift: bigint][] = [
  [parseCidr("::ffff:0:0/96")!, 0n],
  [parseCidr("::/96")!, 0n],
  [parseCidr("64:ff9b::/96")!, 0n],
  [parseCidr("2002::/16")!, 80n],
];

/** The IPv4 address an IPv6 address carries, or the address itself. */
export function unwrapIp(ip: Ip): Ip {
  if (ip.family === 4) return ip;
  for (const [range, shift] of embedding) {
    // :: and ::1 sit inside ::/96 but are IPv6's own unspecified and loopback addresses.
    if (isInCidr(ip, range) && !(range.bits === 96 && range.value === 0n && ip.value <= 1n)) {
      return { family: 4, value: (ip.value >> shift) & 0xffffffffn };
    }
  }
  return ip;
}

export function classifyIp(ip: Ip): AddressKind {
  const effective = unwrapIp(ip);
  const ranges = effective.family === 4 ? ipv4Ranges : ipv6Ranges;
  for (const [kind, list] of ranges) if (list.some((range) => isInCidr(effective, range))) return kind;
  return "public";
}
