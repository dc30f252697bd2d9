import { z } from "zod";
import type { RealtimeHub } from "../jobs/realtime";

// Database triggers (migration 20261203030000_auth_sessions) announce every end or change of
// access — a session deleted, a token revoked, a membership removed or its role changed — on
// one channel, ids only. Whoever holds access in memory (an open event stream, the model
// server's token cache) listens, and checks again or forgets at once.

export const ACCESS_CHANNEL = "gantry_access";

export const accessChangeSchema = z.object({
  userId: z.uuid(),
  orgId: z.uuid().optional(),
  tokenId: z.uuid().optional(),
  sessionId: z.uuid().optional(),
});
export type AccessChange = z.infer<typeof accessChangeSchema>;

/** A change, or null after the connection was lost: anything may have changed meanwhile. */
type AccessListener = (change: AccessChange | null) => void;

const ANYONE = "*";
// One channel listener per hub, which parses each notification once and hands it on by user.
const byHub = new WeakMap<RealtimeHub, Map<string, Set<AccessListener>>>();

function parseChange(payload: string): AccessChange | null {
  try {
    const parsed = accessChangeSchema.safeParse(JSON.parse(payload));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

function listenersOf(hub: RealtimeHub): Map<string, Set<AccessListener>> {
  let byUser = byHub.get(hub);
  if (byUser) return byUser;
  const created = new Map<string, Set<AccessListener>>();
  byHub.set(hub, (byUser = created));
  hub.listen(ACCESS_CHANNEL, (payload) => {
    if (payload === null) {
      for (const set of created.values()) for (const listener of set) listener(null);
      return;
    }
    const change = parseChange(payload);
    if (!change) return;
    for (const key of [change.userId, ANYONE]) for (const listener of created.get(key) ?? []) listener(change);
  });
  return byUser;
}

function subscribe(hub: RealtimeHub, key: string, listener: AccessListener): () => void {
  const byUser = listenersOf(hub);
  let set = byUser.get(key);
  if (!set) byUser.set(key, (set = new Set()));
  set.add(listener);
  return () => {
    set.delete(listener);
    if (set.size === 0) byUser.delete(key);
  };
}

/** Every access change, whoever's it is (the model server's token cache). */
export function onAccessChange(hub: RealtimeHub, listener: AccessListener): () => void {
  return subscribe(hub, ANYONE, listener);
}

/** Calls `changed` whenever this person's access may have changed (or changes may have been missed). */
export function watchAccessOf(hub: RealtimeHub, userId: string, changed: () => void): () => void {
  return subscribe(hub, userId, () => changed());
}
