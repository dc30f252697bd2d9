import { db } from "../db";
import { env } from "../env";
import { resolveRequestIdentity } from "../auth/request-actor";
import { realtimeHub } from "../jobs/hub";
import type { Context } from "./trpc";

export async function createContext(headers: Headers): Promise<Context> {
  const identity = await resolveRequestIdentity(db(), headers);
  return { ...identity, db: db(), hub: realtimeHub(), baseUrl: env().PUBLIC_URL };
}
