import { initTRPC, TRPCError } from "@trpc/server";
import superjson from "superjson";
import { ZodError } from "zod";
import type { Db } from "../db";
import { AppError, isAppError, type ErrorCode } from "../errors";
import { checkRole, type Actor, type OrgActor, type Role } from "../auth/roles";
import type { RequestIdentity } from "../auth/request-actor";
import type { RealtimeHub } from "../jobs/realtime";
import { refuseNulCharacters } from "../security/nul-characters";

export interface Context extends RequestIdentity {
  db: Db;
  hub: RealtimeHub;
  baseUrl: string;
  /** The caller's network address, for rate limits. */
  address?: string;
}

/** Every procedure states who may call it; the authorization test reads this. */
export interface Meta {
  access: "public" | "authed" | Role;
}

const t = initTRPC
  .context<Context>()
  .meta<Meta>()
  .create({
    transformer: superjson,
    // Subscriptions ride on SSE: ping so proxies with idle timeouts keep live views open.
    sse: { ping: { enabled: true, intervalMs: 15_000 }, client: { reconnectAfterInactivityMs: 40_000 } },
    errorFormatter({ shape, error }) {
      const isInternal = error.code === "INTERNAL_SERVER_ERROR";
      const fieldErrors = error.cause instanceof ZodError ? error.cause.issues.map((i) => ({ path: i.path.join("."), message: i.message })) : undefined;
      // An input that does not fit says so in a sentence naming each field (zod's own message is its issues as JSON).
      const message = isInternal
        ? "Something went wrong on the server; the details are in its log."
        : fieldErrors
          ? `The input is not valid: ${fieldErrors.map((f) => `${f.path || "input"}: ${f.message}`).join("; ")}`
          : shape.message;
      return { ...shape, message, data: { ...shape.data, stack: undefined, fieldErrors } };
    },
  });

const trpcCode: Record<ErrorCode, TRPCError["code"]> = {
  NOT_FOUND: "NOT_FOUND",
  FORBIDDEN: "FORBIDDEN",
  UNAUTHORIZED: "UNAUTHORIZED",
  CONFLICT: "CONFLICT",
  BAD_REQUEST: "BAD_REQUEST",
  PAYLOAD_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  UNSUPPORTED_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  RATE_LIMITED: "TOO_MANY_REQUESTS",
  INTERNAL: "INTERNAL_SERVER_ERROR",
};

/** The one place AppError becomes a tRPC error. */
export function toTRPCError(error: AppError): TRPCError {
  return new TRPCError({ code: trpcCode[error.code], message: error.message, cause: error });
}

async function* mapStreamErrors<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (error) {
    throw isAppError(error) ? toTRPCError(error) : error;
  }
}

const isAsyncIterable = (value: unknown): value is AsyncIterable<unknown> =>
  value !== null && typeof value === "object" && Symbol.asyncIterator in value;

/** AppErrors become tRPC errors, whether thrown by a call or later by a subscription's stream. */
const mapErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok && isAppError(result.error.cause)) throw toTRPCError(result.error.cause);
  if (result.ok && isAsyncIterable(result.data)) return { ...result, data: mapStreamErrors(result.data) };
  return result;
});

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;

/** An input holding a NUL character is refused before the procedure runs (security/nul-characters.ts). */
const refuseNul = t.middleware(async ({ getRawInput, next }) => {
  refuseNulCharacters(await getRawInput(), "The input");
  return next();
});

const base = t.procedure.use(mapErrors).use(refuseNul);

export const publicProcedure = base.meta({ access: "public" });

function requireActor(ctx: Context): Actor {
  if (ctx.authError) throw toTRPCError(ctx.authError);
  if (!ctx.actor) throw new TRPCError({ code: "UNAUTHORIZED", message: "Sign in to continue" });
  return ctx.actor;
}

/**
 * For a signed-in person acting on their own account (making or joining organisations). API
 * tokens act only inside their organisation, so they are refused here.
 */
export const authedProcedure = base.meta({ access: "authed" }).use(({ ctx, next }) => {
  const actor = requireActor(ctx);
  if (actor.tokenId) throw new TRPCError({ code: "FORBIDDEN", message: "API tokens act only inside their organisation; sign in to the portal to do this" });
  return next({ ctx: { actor } });
});

/** A procedure acting inside the caller's organisation, for members of at least `minRole`. */
export function orgProcedure(minRole: Role) {
  return base.meta({ access: minRole }).use(({ ctx, next }) => {
    requireActor(ctx);
    const orgActor: OrgActor | null = ctx.orgActor;
    if (!orgActor) {
      throw new TRPCError({ code: "FORBIDDEN", message: ctx.requestedOrgId ? "You are not a member of that organisation" : "You are not a member of any organisation yet; ask for an invite link" });
    }
    checkRole(orgActor, minRole);
    return next({ ctx: { actor: orgActor, orgActor } });
  });
}
