import dns from "node:dns";
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import { Readable } from "node:stream";
import { z } from "zod";
import { env } from "../env";
import { AppError } from "../errors";
import { classifyIp, isInCidr, parseCidr, parseIp, unwrapIp, type AddressKind, type Cidr } from "./ip-ranges";

// The outbound policy: every connection the server opens on someone's behalf (model
// downloads, hubs, webhooks, devices, GPU hosts, discovery, object storage) asks here first. A host is
// resolved, every address it resolves to is checked, and the connection goes to a checked
// address, so a name that resolves differently a moment later (DNS rebinding) gains nothing.
// Redirects are followed here, one checked hop at a time.
//
// Loopback, link-local and cloud metadata addresses are refused for every purpose unless an
// instance admin allows them; private networks are fine for devices and GPU hosts (a fleet
// lives on a LAN) but not for URLs people paste (model files, webhooks).

export const outboundPurposeSchema = z.enum(["model-source", "dataset-source", "webhook", "device", "training-host", "discovery", "object-storage"]);
export type OutboundPurpose = z.infer<typeof outboundPurposeSchema>;

export interface OutboundSettings {
  allowLoopback: boolean;
  allowPrivate: boolean;
  allowedCidrs: Cidr[];
}

export function outboundSettings(): OutboundSettings {
  const e = env();
  return { allowLoopback: e.OUTBOUND_ALLOW_LOOPBACK, allowPrivate: e.OUTBOUND_ALLOW_PRIVATE, allowedCidrs: e.OUTBOUND_ALLOW_CIDRS.map((c) => parseCidr(c)!) };
}

// Object storage is the instance's own (MinIO, Garage or Swift often runs beside it on the LAN).
const isLanPurpose = (purpose: OutboundPurpose) => purpose === "device" || purpose === "training-host" || purpose === "discovery" || purpose === "object-storage";

const actionOf: Record<OutboundPurpose, string> = {
  "model-source": "download model files from",
  "dataset-source": "download datasets from",
  webhook: "send webhooks to",
  device: "connect to devices at",
  "training-host": "connect to training hosts at",
  discovery: "scan",
  "object-storage": "keep files in object storage at",
};

const kindText: Record<Exclude<AddressKind, "public">, string> = {
  loopback: "a loopback address (this server itself)",
  private: "a private network address",
  "link-local": "a link-local address",
  metadata: "a cloud metadata address",
  "non-unicast": "a multicast, broadcast or reserved address",
};

const remedyOf: Record<Exclude<AddressKind, "public">, string> = {
  loopback: "an instance admin can allow it with OUTBOUND_ALLOW_LOOPBACK=true",
  private: "an instance admin can allow private networks with OUTBOUND_ALLOW_PRIVATE=true, or this address with OUTBOUND_ALLOW_CIDRS",
  "link-local": "an instance admin can allow its range with OUTBOUND_ALLOW_CIDRS",
  metadata: "an instance admin can allow exactly this address with OUTBOUND_ALLOW_CIDRS",
  "non-unicast": "use the address of one machine",
};

/** A connection the policy refuses; the message names the host, the kind of address and the setting that allows it. */
export class OutboundRefusedError extends AppError {
  constructor(
    readonly host: string,
    readonly kind: Exclude<AddressKind, "public">,
    readonly purpose: OutboundPurpose,
    lead: string,
  ) {
    super("BAD_REQUEST", `${lead} ${kindText[kind]}, which Gantry does not ${actionOf[purpose]}; ${remedyOf[kind]}`);
  }
}

/** Whether an address may be reached for a purpose, and if not, what kind of address it is. */
export function judgeAddress(address: string, purpose: OutboundPurpose, settings: OutboundSettings = outboundSettings()): { isAllowed: boolean; kind: AddressKind } {
  const ip = parseIp(address);
  if (!ip) throw new AppError("INTERNAL", `${address} is not an IP address`);
  const kind = classifyIp(ip);
  const effective = unwrapIp(ip);
  // A metadata address is allowed only when listed on its own, never as part of a wider range.
  const isListed = settings.allowedCidrs.some((c) => (isInCidr(ip, c) || isInCidr(effective, c)) && (kind !== "metadata" || c.bits === (c.family === 4 ? 32 : 128)));
  if (isListed || kind === "public") return { isAllowed: true, kind };
  if (kind === "loopback") return { isAllowed: settings.allowLoopback, kind };
  if (kind === "private") return { isAllowed: isLanPurpose(purpose) || settings.allowPrivate, kind };
  return { isAllowed: false, kind };
}

/**
 * Throws OutboundRefusedError unless the policy allows the address. `lead` begins the message
 * ("10.0.0.1 is", "nas.lab resolves to"); by default the address itself.
 */
export function checkAddress(address: string, purpose: OutboundPurpose, { lead = `${address} is`, settings }: { lead?: string; settings?: OutboundSettings } = {}): void {
  const { isAllowed, kind } = judgeAddress(address, purpose, settings);
  if (!isAllowed) throw new OutboundRefusedError(address, kind as Exclude<AddressKind, "public">, purpose, lead);
}

export interface ResolvedHost {
  /** The address to connect to: the first the resolver gave. */
  address: string;
  family: 4 | 6;
  /** Every address the host resolved to, each of them checked. */
  addresses: { address: string; family: 4 | 6 }[];
}

/**
 * Resolves a host the way the OS does (so 0x7f000001, 2130706433 and 127.1 are read as the
 * OS reads them), checks every address it resolves to, and returns the one to connect to.
 */
export async function checkHost(host: string, purpose: OutboundPurpose, { settings }: { settings?: OutboundSettings } = {}): Promise<ResolvedHost> {
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  const literal = parseIp(bare);
  let addresses: { address: string; family: 4 | 6 }[];
  if (literal) {
    addresses = [{ address: bare, family: literal.family }];
  } else {
    try {
      addresses = (await dns.promises.lookup(bare, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOTFOUND" || code === "ENODATA" || code === "EAI_NONAME") {
        throw new AppError("BAD_REQUEST", `The host name ${host} does not resolve; check the address`, { cause: error });
      }
      throw new AppError("INTERNAL", `Could not look up ${host} (${code ?? "resolver error"}); try again shortly`, { cause: error });
    }
    if (addresses.length === 0) throw new AppError("BAD_REQUEST", `The host name ${host} does not resolve; check the address`);
  }
  const s = settings ?? outboundSettings();
  for (const { address } of addresses) checkAddress(address, purpose, { settings: s, lead: literal ? `${host} is` : `${host} resolves to` });
  return { ...addresses[0], addresses };
}

/** Checks an http(s) URL's host before it is stored (a model source, a webhook); the fetch checks again. */
export async function checkUrl(url: string, purpose: OutboundPurpose, opts: { settings?: OutboundSettings } = {}): Promise<void> {
  const u = new URL(url);
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new AppError("BAD_REQUEST", `${u.protocol}// addresses cannot be fetched; use an http:// or https:// address`);
  await checkHost(u.hostname, purpose, opts);
}

/**
 * A connection that failed before an HTTP answer came: refused, reset, timed out, not HTTP,
 * a TLS failure. Deliberately one message for all of them, so a caller cannot tell an open
 * port from a closed one from a non-HTTP service.
 */
export class OutboundConnectError extends AppError {
  constructor(
    readonly host: string,
    cause: unknown,
  ) {
    super("INTERNAL", `${host} did not answer over HTTP (the connection failed or timed out, or what answered was not HTTP)`, { cause });
  }
}

export interface SafeFetchOptions {
  purpose: OutboundPurpose;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  signal?: AbortSignal;
  /** "follow" (default): redirects are followed, each hop checked; "manual": a 3xx is returned. */
  redirect?: "follow" | "manual";
  maxRedirects?: number;
  settings?: OutboundSettings;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** fetch, through the outbound policy, connecting only to checked addresses. */
export async function safeFetch(input: string | URL, opts: SafeFetchOptions): Promise<Response> {
  const maxRedirects = opts.maxRedirects ?? 5;
  let url = new URL(input);
  let method = (opts.method ?? "GET").toUpperCase();
  let body = opts.body;
  const headers = Object.fromEntries(Object.entries(opts.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  for (let hops = 0; ; hops++) {
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new AppError("BAD_REQUEST", `${url.protocol}// addresses cannot be fetched; use an http:// or https:// address`);
    const target = await checkHost(url.hostname, opts.purpose, { settings: opts.settings });
    const response = await requestPinned(url, { method, headers, body, signal: opts.signal, addresses: target.addresses });
    const location = response.headers.get("location");
    if (opts.redirect === "manual" || !REDIRECTS.has(response.status) || !location) return response;
    await response.body?.cancel();
    if (hops >= maxRedirects) throw new AppError("BAD_REQUEST", `${url.host} redirected more than ${maxRedirects} times; use the final address`);
    const next = new URL(location, url);
    // Credentials are for the origin they were given for, never for where it redirects.
    if (next.origin !== url.origin) {
      delete headers.authorization;
      delete headers.cookie;
    }
    if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === "POST")) {
      if (method !== "HEAD") method = "GET";
      body = undefined;
      delete headers["content-type"];
      delete headers["content-length"];
    }
    url = next;
  }
}

function requestPinned(url: URL, opts: { method: string; headers: Record<string, string>; body?: string | Buffer; signal?: AbortSignal; addresses: ResolvedHost["addresses"] }): Promise<Response> {
  // The socket connects to the checked addresses, whatever the name resolves to by then. An
  // IP literal never reaches this (it is its own checked address).
  const lookup = ((_hostname: string, options: dns.LookupOptions, callback: (error: Error | null, address: string | dns.LookupAddress[], family?: number) => void) => {
    if (options.all) return callback(null, opts.addresses);
    const pick = opts.addresses.find((a) => !options.family || a.family === options.family) ?? opts.addresses[0];
    callback(null, pick.address, pick.family);
  }) as net.LookupFunction;
  const client = url.protocol === "https:" ? https : http;
  return new Promise<Response>((resolve, reject) => {
    const req = client.request(url, { method: opts.method, headers: opts.headers, signal: opts.signal, agent: false, lookup }, (res) => {
      try {
        resolve(toResponse(res, url, opts.method));
      } catch (error) {
        res.destroy();
        reject(new OutboundConnectError(url.host, error));
      }
    });
    req.on("error", (error) => reject(opts.signal?.aborted ? opts.signal.reason : new OutboundConnectError(url.host, error)));
    req.end(opts.body);
  });
}

function toResponse(res: http.IncomingMessage, url: URL, method: string): Response {
  const status = res.statusCode ?? 0;
  if (status < 200 || status > 599) throw new Error(`HTTP status ${status}`);
  const headers = new Headers();
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  const hasNoBody = method === "HEAD" || status === 204 || status === 205 || status === 304;
  if (hasNoBody) res.resume();
  const response = new Response(hasNoBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, statusText: res.statusMessage, headers });
  Object.defineProperty(response, "url", { value: url.toString() });
  return response;
}
