import { z } from "zod";
import {
  createInviteInput, createOrgInput, inviteIdInput, inviteSchema, inviteTokenInput, memberSchema,
  removeMemberInput, renameOrgInput, setRoleInput, switchOrgInput,
} from "../../orgs/orgs.schemas";
import { createOrg, listMembers, removeMember, renameOrg, setMemberRole, switchOrg } from "../../orgs/orgs.service";
import { acceptInvite, createInvite, describeInvite, listInvites, revokeInvite } from "../../orgs/invites.service";
import { roleSchema } from "../../auth/roles";
import { authedProcedure, orgProcedure, publicProcedure, router } from "../trpc";

const ok = z.object({ ok: z.literal(true) });

export const orgsRouter = router({
  create: authedProcedure.input(createOrgInput).output(z.object({ id: z.uuid() })).mutation(({ ctx, input }) => createOrg(ctx.db, { actor: ctx.actor, name: input.name })),
  switch: authedProcedure.input(switchOrgInput).output(ok).mutation(async ({ ctx, input }) => {
    await switchOrg(ctx.db, { actor: ctx.actor, orgId: input.orgId });
    return { ok: true as const };
  }),
  rename: orgProcedure("admin").input(renameOrgInput).output(ok).mutation(async ({ ctx, input }) => {
    await renameOrg(ctx.db, { actor: ctx.orgActor, name: input.name });
    return { ok: true as const };
  }),
  members: orgProcedure("viewer").output(z.array(memberSchema)).query(({ ctx }) => listMembers(ctx.db, ctx.orgActor.orgId)),
  setRole: orgProcedure("admin").input(setRoleInput).output(ok).mutation(async ({ ctx, input }) => {
    await setMemberRole(ctx.db, { actor: ctx.orgActor, userId: input.userId, role: input.role });
    return { ok: true as const };
  }),
  removeMember: orgProcedure("admin").input(removeMemberInput).output(ok).mutation(async ({ ctx, input }) => {
    await removeMember(ctx.db, { actor: ctx.orgActor, userId: input.userId });
    return { ok: true as const };
  }),
});

export const invitesRouter = router({
  list: orgProcedure("admin").output(z.array(inviteSchema)).query(({ ctx }) => listInvites(ctx.db, ctx.orgActor.orgId)),
  create: orgProcedure("admin")
    .input(createInviteInput)
    .output(z.object({ id: z.uuid(), url: z.string(), expiresAt: z.date() }))
    .mutation(({ ctx, input }) => createInvite(ctx.db, { actor: ctx.orgActor, role: input.role, expiresInDays: input.expiresInDays, baseUrl: ctx.baseUrl })),
  revoke: orgProcedure("admin").input(inviteIdInput).output(ok).mutation(async ({ ctx, input }) => {
    await revokeInvite(ctx.db, { actor: ctx.orgActor, inviteId: input.inviteId });
    return { ok: true as const };
  }),
  describe: publicProcedure
    .input(inviteTokenInput)
    .output(z.object({ orgName: z.string(), role: roleSchema, expiresAt: z.date() }))
    .query(({ ctx, input }) => describeInvite(ctx.db, input.token)),
  accept: authedProcedure.input(inviteTokenInput).output(z.object({ orgId: z.uuid() })).mutation(({ ctx, input }) => acceptInvite(ctx.db, { token: input.token, actor: ctx.actor })),
});
