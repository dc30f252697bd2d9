import { z } from "zod";
import { agentCommandSchema, agentSchema, sendCommandInput } from "../../hardware/hardware.schemas";
import { getAgent, getAgentCommand, listAgentCommands, listAgents, removeAgent, sendAgentCommand } from "../../hardware/commands.service";
import { orgProcedure, router } from "../trpc";

export const hardwareRouter = router({
  agents: orgProcedure("viewer").output(z.array(agentSchema)).query(({ ctx }) => listAgents(ctx.db, { actor: ctx.orgActor })),
  agent: orgProcedure("viewer")
    .input(z.object({ agentId: z.uuid() }))
    .output(agentSchema)
    .query(({ ctx, input }) => getAgent(ctx.db, { actor: ctx.orgActor, agentId: input.agentId })),
  commands: orgProcedure("viewer")
    .input(z.object({ agentId: z.uuid(), limit: z.number().int().min(1).max(100).default(20) }))
    .output(z.array(agentCommandSchema))
    .query(({ ctx, input }) => listAgentCommands(ctx.db, { actor: ctx.orgActor, ...input })),
  command: orgProcedure("viewer")
    .input(z.object({ commandId: z.uuid() }))
    .output(agentCommandSchema)
    .query(({ ctx, input }) => getAgentCommand(ctx.db, { actor: ctx.orgActor, commandId: input.commandId })),
  sendCommand: orgProcedure("operator")
    .input(sendCommandInput)
    .output(agentCommandSchema)
    .mutation(({ ctx, input }) => sendAgentCommand(ctx.db, { actor: ctx.orgActor, input })),
  removeAgent: orgProcedure("admin")
    .input(z.object({ agentId: z.uuid() }))
    .output(z.object({ ok: z.literal(true) }))
    .mutation(async ({ ctx, input }) => {
      await removeAgent(ctx.db, { actor: ctx.orgActor, agentId: input.agentId });
      return { ok: true as const };
    }),
});
