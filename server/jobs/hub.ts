import { db, databaseUrl } from "../db";
import { RealtimeHub } from "./realtime";

const globalForHub = globalThis as unknown as { gantryHub?: RealtimeHub };

/** The process's one LISTEN client. */
export function realtimeHub(): RealtimeHub {
  globalForHub.gantryHub ??= new RealtimeHub({ url: databaseUrl(), db: db(), log: (m) => console.warn(m) });
  return globalForHub.gantryHub;
}
