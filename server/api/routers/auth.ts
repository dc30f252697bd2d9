import { z } from "zod";
import { accountSchema, signInMethodsSchema, signUpInput } from "../../auth/auth.schemas";
import { describeAccount, signInMethods, signUp } from "../../auth/accounts.service";
import { env } from "../../env";
import { authedProcedure, publicProcedure, router } from "../trpc";

export const authRouter = router({
  signUp: publicProcedure
    .input(signUpInput)
    .output(z.object({ userId: z.uuid() }))
    .mutation(async ({ ctx, input }) => ({ userId: (await signUp(ctx.db, { input, allowSignup: env().ALLOW_SIGNUP, address: ctx.address, signUpsPerHour: env().SIGNUPS_PER_HOUR })).id })),

  providers: publicProcedure.output(signInMethodsSchema).query(({ ctx }) => signInMethods(ctx.db, env())),

  me: authedProcedure.output(accountSchema).query(({ ctx }) => describeAccount(ctx.db, { userId: ctx.actor.userId, orgActor: ctx.orgActor })),
});
