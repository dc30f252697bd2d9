import { connectSsh, type SshSession, type SshTarget } from "./ssh-client";

// Connections kept open between uses (health checks every minute, the steps of one
// deployment), keyed by the caller (a device id). A connection that dropped, or whose
// target changed (new address, credential or pinned key), is replaced; one left idle is
// closed. Concurrent callers for the same key share one connect.

export interface SshPoolOptions {
  idleMs?: number;
}

interface Entry {
  session: Promise<SshSession>;
  signature: string;
  lastUsed: number;
}

export class SshPool {
  private readonly entries = new Map<string, Entry>();
  private readonly timer: NodeJS.Timeout;
  private readonly idleMs: number;

  constructor({ idleMs = 5 * 60_000 }: SshPoolOptions = {}) {
    this.idleMs = idleMs;
    this.timer = setInterval(() => this.closeIdle(), Math.min(idleMs, 30_000));
    this.timer.unref();
  }

  async get(key: string, target: SshTarget): Promise<SshSession> {
    const signature = JSON.stringify([target.host, target.port, target.username, target.privateKey, target.password, target.pinnedFingerprint]);
    const existing = this.entries.get(key);
    if (existing && existing.signature === signature) {
      const session = await existing.session.catch(() => null);
      if (session && !session.isClosed) {
        existing.lastUsed = Date.now();
        return session;
      }
      if (this.entries.get(key) === existing) this.entries.delete(key);
      if (!session) return this.get(key, target);
    } else if (existing) {
      this.drop(key);
    }
    const entry: Entry = { session: connectSsh(target), signature, lastUsed: Date.now() };
    this.entries.set(key, entry);
    entry.session.catch(() => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    });
    return entry.session;
  }

  /** Closes and forgets one connection (after re-pinning, a credential change, a delete). */
  drop(key: string): void {
    const entry = this.entries.get(key);
    this.entries.delete(key);
    entry?.session.then((s) => s.close()).catch(() => {});
  }

  get size(): number {
    return this.entries.size;
  }

  private closeIdle(): void {
    const cutoff = Date.now() - this.idleMs;
    for (const [key, entry] of this.entries) if (entry.lastUsed < cutoff) this.drop(key);
  }

  close(): void {
    clearInterval(this.timer);
    for (const key of [...this.entries.keys()]) this.drop(key);
  }
}
