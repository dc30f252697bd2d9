import { openSecret, sealSecret } from "../security/secret-box";
import type { VersionSource } from "./models.schemas";

// A model's source URL is shown to everyone in the organisation and written to the audit log,
// but a signed URL (S3, GCS, Azure) carries its signature and credentials in the query. What
// is kept in the clear is the URL with the query's values redacted; the whole URL is kept
// sealed (AES-256-GCM under ENCRYPTION_KEY) for the fetch alone.

type UrlSource = Extract<VersionSource, { kind: "url" }>;

/** The URL with every query value (and any user name, password or fragment) replaced or dropped. */
export function redactUrl(url: string): string {
  if (!URL.canParse(url)) return "(an address that could not be read)";
  const u = new URL(url);
  const names = [...new Set(u.searchParams.keys())];
  const query = names.length ? `?${names.map((n) => `${encodeURIComponent(n)}=redacted`).join("&")}` : "";
  return `${u.protocol}//${u.host}${u.pathname}${query}`;
}

/** How a URL a person gave is stored: shown redacted, and sealed whole when the redaction hid anything. */
export function toUrlSource(url: string, key?: string): UrlSource {
  const shown = redactUrl(url);
  return shown === url ? { kind: "url", url } : { kind: "url", url: shown, sealedUrl: sealSecret(url, key) };
}

/** The address to fetch: the sealed original when there is one. */
export function urlToFetch(source: UrlSource, key?: string): string {
  return source.sealedUrl ? openSecret(source.sealedUrl, key) : source.url;
}

/** A source as people see it, in the portal and the audit log: never the sealed original, and no query values (versions stored before sealing included). */
export function toPublicSource(source: VersionSource): VersionSource {
  return source.kind === "url" ? { kind: "url", url: redactUrl(source.url) } : source;
}
