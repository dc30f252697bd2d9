import { z } from "zod";
import { accountSchema, changePasswordInput, signInMethodsSchema, signUpInput } from "../../auth/auth.schemas";
import { describeAccount, signInMethods, signUp } from "../../auth/accounts.service";
import { changePassword } from "../../auth/password-change.service";
import { signOutEverywhere } from "../../auth/sessions.service";
import { env } from "../../env";
import { authedProcedure, publicProcedure, router } from "../trpc";

export const authRouter = router({
  signUp: publicProcedure
    .input(signUpInput)
    .output(z.object({ userId: z.uuid() }))
    .mutation(async ({ ctx, input }) => ({ userId: (await signUp(ctx.db, { input, allowSignup: env().ALLOW_SIGNUP, address: ctx.address, signUpsPerHour: env().SIGNUPS_PER_HOUR })).id })),

  providers: publicProcedure.output(signInMethodsSchema).query(({ ctx }) => signInMethods(ctx.db, env())),

  me: authedProcedure.output(accountSchema).query(({ ctx }) => describeAccount(ctx.db, { userId: ctx.actor.userId, orgActor: ctx.orgActor, instanceAdmins: env().INSTANCE_ADMINS })),

  /** Ends every session of the caller, this browser's included. */
  signOutEverywhere: authedProcedure
    .output(z.object({ ended: z.number().int() }))
    .mutation(({ ctx }) => signOutEverywhere(ctx.db, { actor: ctx.actor, orgId: ctx.orgActor?.orgId ?? null })),

  /** Other sessions end; this one stays signed in. */
  changePassword: authedProcedure
    .input(changePasswordInput)
    .output(z.object({ endedSessions: z.number().int() }))
    .mutation(({ ctx, input }) => changePassword(ctx.db, { actor: ctx.actor, input })),
});
