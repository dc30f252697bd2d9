import { z } from "zod";
import { apiTokenSchema, createTokenInput } from "../../auth/auth.schemas";
import { createApiToken, listApiTokens, revokeApiToken } from "../../auth/tokens.service";
import { orgProcedure, router } from "../trpc";

export const tokensRouter = router({
  list: orgProcedure("viewer").output(z.array(apiTokenSchema)).query(({ ctx }) => listApiTokens(ctx.db, ctx.orgActor)),
  create: orgProcedure("viewer")
    .input(createTokenInput)
    .output(z.object({ id: z.uuid(), token: z.string() }))
    .mutation(({ ctx, input }) => createApiToken(ctx.db, { actor: ctx.orgActor, input })),
  revoke: orgProcedure("viewer")
    .input(z.object({ tokenId: z.uuid() }))
    .output(z.object({ ok: z.literal(true) }))
    .mutation(async ({ ctx, input }) => {
      await revokeApiToken(ctx.db, { actor: ctx.orgActor, tokenId: input.tokenId });
      return { ok: true as const };
    }),
});
