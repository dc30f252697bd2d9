import { z } from "zod";
import { signUpInput } from "../../auth/auth.schemas";
import { getSessionUser, signUp } from "../../auth/accounts.service";
import { listMyOrgs } from "../../orgs/orgs.service";
import { orgSummarySchema } from "../../orgs/orgs.schemas";
import { roleSchema } from "../../auth/roles";
import { env } from "../../env";
import { AppError } from "../../errors";
import { authedProcedure, publicProcedure, router } from "../trpc";

const meSchema = z.object({
  user: z.object({ id: z.uuid(), email: z.string(), name: z.string() }),
  orgs: z.array(orgSummarySchema),
  currentOrg: z.object({ id: z.uuid(), name: z.string(), role: roleSchema }).nullable(),
});

export const authRouter = router({
  signUp: publicProcedure
    .input(signUpInput)
    .output(z.object({ userId: z.uuid() }))
    .mutation(async ({ ctx, input }) => ({ userId: (await signUp(ctx.db, { input, allowSignup: env().ALLOW_SIGNUP, address: ctx.address })).id })),

  providers: publicProcedure
    .output(z.object({ password: z.boolean(), firebase: z.object({ apiKey: z.string(), projectId: z.string(), authDomain: z.string().nullable(), emulatorHost: z.string().nullable() }).nullable(), allowSignup: z.boolean() }))
    .query(() => {
      const s = env();
      return {
        password: true,
        allowSignup: s.ALLOW_SIGNUP,
        firebase: s.isFirebaseEnabled ? { apiKey: s.FIREBASE_API_KEY!, projectId: s.FIREBASE_PROJECT_ID!, authDomain: s.FIREBASE_AUTH_DOMAIN ?? null, emulatorHost: s.FIREBASE_AUTH_EMULATOR_HOST ?? null } : null,
      };
    }),

  me: authedProcedure.output(meSchema).query(async ({ ctx }) => {
    const user = await getSessionUser(ctx.db, ctx.actor.userId);
    if (!user) throw new AppError("UNAUTHORIZED", "Your account no longer exists");
    const orgs = await listMyOrgs(ctx.db, user.id);
    const current = ctx.orgActor ? orgs.find((o) => o.id === ctx.orgActor!.orgId) : undefined;
    return { user, orgs, currentOrg: current ? { id: current.id, name: current.name, role: current.role } : null };
  }),
});
