import type { OutboundPurpose } from "../security/outbound";
import { openSecret, sealSecret } from "../security/secret-box";
import type { SshTarget } from "./ssh-client";

// Hosts Gantry reaches over SSH (devices, training hosts) keep their credential sealed in one
// column: a password, or a private key with its passphrase as JSON. It is sealed here and
// opened here, in the worker or web process, and nowhere else.

export type CredentialInput = { kind: "key"; privateKey: string; passphrase?: string } | { kind: "password"; password: string };

export function sealCredential(credential: CredentialInput): { authKind: "key" | "password"; credential: string } {
  if (credential.kind === "password") return { authKind: "password", credential: sealSecret(credential.password) };
  return { authKind: "key", credential: sealSecret(JSON.stringify({ privateKey: credential.privateKey, passphrase: credential.passphrase })) };
}

export interface SealedHost {
  name: string;
  host: string;
  port: number;
  username: string;
  authKind: string;
  credential: string;
  pinnedHostKey: string | null;
}

export function sshTargetOfSealed(row: SealedHost, opts: { pinned?: string | null; timeoutMs: number; purpose: OutboundPurpose }): SshTarget {
  const secret = openSecret(row.credential);
  const credential = row.authKind === "password" ? { password: secret } : (JSON.parse(secret) as { privateKey: string; passphrase?: string });
  return {
    name: row.name,
    host: row.host,
    port: row.port,
    username: row.username,
    ...credential,
    pinnedFingerprint: opts.pinned === undefined ? row.pinnedHostKey : opts.pinned,
    timeoutMs: opts.timeoutMs,
    purpose: opts.purpose,
  };
}
