import crypto from "node:crypto";
import { env } from "../env";
import { AppError } from "../errors";

// Secrets at rest (device passwords and keys, hub tokens): AES-256-GCM under a key derived
// from ENCRYPTION_KEY. A sealed value is iv (12 bytes) | ciphertext | tag (16 bytes); the
// tag makes a value sealed under another key, or altered, fail to open instead of opening
// to garbage. Text form: "v1:" + base64, so a later scheme can sit beside this one.

const IV_BYTES = 12;
const TAG_BYTES = 16;
const PREFIX = "v1:";

function keyBytes(key: string): Buffer {
  return crypto.createHash("sha256").update(key).digest();
}

export function sealBytes(plain: Buffer | string, key: string = env().ENCRYPTION_KEY): Buffer {
  const iv = crypto.randomBytes(IV_BYTES);
  const cipher = crypto.createCipheriv("aes-256-gcm", keyBytes(key), iv);
  return Buffer.concat([iv, cipher.update(typeof plain === "string" ? Buffer.from(plain, "utf8") : plain), cipher.final(), cipher.getAuthTag()]);
}

export function openBytes(sealed: Buffer, key: string = env().ENCRYPTION_KEY): Buffer {
  if (sealed.length < IV_BYTES + TAG_BYTES) throw new AppError("INTERNAL", "A sealed secret is too short to be one; enter it again");
  const decipher = crypto.createDecipheriv("aes-256-gcm", keyBytes(key), sealed.subarray(0, IV_BYTES));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
  } catch (error) {
    throw new AppError("INTERNAL", "A stored secret could not be decrypted: ENCRYPTION_KEY has changed since it was saved; enter the secret again", { cause: error });
  }
}

/** Seals text for a database column. */
export function sealSecret(plain: string, key?: string): string {
  return PREFIX + sealBytes(plain, key).toString("base64");
}

export function openSecret(sealed: string, key?: string): string {
  if (!sealed.startsWith(PREFIX)) throw new AppError("INTERNAL", "A stored secret is in a form this version cannot read; enter it again");
  return openBytes(Buffer.from(sealed.slice(PREFIX.length), "base64"), key).toString("utf8");
}
