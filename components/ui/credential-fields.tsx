"use client";

import { SelectField, TextField } from "./field";

// How Gantry signs in to a host over SSH (a device, a training host): a private key with its
// optional passphrase, or a password. Sent to the server once, sealed there, never shown again.

export type AuthKind = "key" | "password";
export type CredentialValue = { kind: "key"; privateKey: string; passphrase?: string } | { kind: "password"; password: string };

export function CredentialFields({ authKind, onAuthKind, idPrefix }: { authKind: AuthKind; onAuthKind: (kind: AuthKind) => void; idPrefix: string }) {
  return (
    <>
      <SelectField label="Sign in with" name="authKind" value={authKind} onChange={(e) => onAuthKind(e.target.value as AuthKind)} options={[{ value: "key", label: "SSH key" }, { value: "password", label: "Password" }]} />
      {authKind === "password" ? (
        <TextField label="Password" name="password" type="password" required autoComplete="new-password" />
      ) : (
        <TextField label="Key passphrase" name="passphrase" type="password" autoComplete="new-password" hint="only when the key has one" />
      )}
      {authKind === "key" && (
        <div className="space-y-1.5 sm:col-span-3">
          <label htmlFor={`${idPrefix}-private-key`} className="block text-sm font-medium">Private key</label>
          <textarea id={`${idPrefix}-private-key`} name="privateKey" required rows={4} className="w-full rounded-md border border-zinc-300 bg-white px-3 py-2 font-mono text-xs dark:border-zinc-700 dark:bg-zinc-950" placeholder="-----BEGIN OPENSSH PRIVATE KEY-----" />
          <p className="text-xs text-zinc-500">Stored encrypted; no page or API shows it again.</p>
        </div>
      )}
    </>
  );
}

/** The credential the fields above hold, from the submitted form. */
export function credentialFromForm(f: FormData, authKind: AuthKind): CredentialValue {
  const passphrase = String(f.get("passphrase") ?? "").trim();
  return authKind === "key" ? { kind: "key", privateKey: String(f.get("privateKey") ?? ""), ...(passphrase ? { passphrase } : {}) } : { kind: "password", password: String(f.get("password") ?? "") };
}
