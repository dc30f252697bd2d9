import { z } from "zod";
import {
  agentCommandSchema,
  agentSchema,
  applyCalibrationInput,
  cancelCommandInput,
  createRobotInput,
  importCalibrationInput,
  robotCalibrationSchema,
  robotChecksSchema,
  robotSchema,
  sendCommandInput,
  updateRobotInput,
} from "../../hardware/hardware.schemas";
import { cancelAgentCommand, getAgent, getAgentCommand, listAgentCommands, listAgents, removeAgent, sendAgentCommand } from "../../hardware/commands.service";
import { applyRobotCalibration, createRobot, deleteRobot, exportRobotCalibration, getRobot, importRobotCalibration, lastRobotChecks, listRobotCalibrations, listRobots, updateRobot } from "../../hardware/robots.service";
import { streamAccessCheck } from "../../auth/request-actor";
import { openJointSampleStream } from "../../hardware/joint-stream";
import { recipeSummaries } from "../../hardware/recipes";
import { orgProcedure, router } from "../trpc";

const ok = z.object({ ok: z.literal(true) });

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
  /** Motors move and EEPROMs are written through commands: operators and above. */
  sendCommand: orgProcedure("operator")
    .input(sendCommandInput)
    .output(agentCommandSchema)
    .mutation(({ ctx, input }) => sendAgentCommand(ctx.db, { actor: ctx.orgActor, input })),
  cancelCommand: orgProcedure("operator")
    .input(cancelCommandInput)
    .output(agentCommandSchema)
    .mutation(({ ctx, input }) => cancelAgentCommand(ctx.db, { actor: ctx.orgActor, commandId: input.commandId })),
  /** A running command's joint readings as they arrive (live joints, range recording), until it ends. */
  onJointSamples: orgProcedure("viewer")
    .input(z.object({ commandId: z.uuid() }))
    .subscription(async function* ({ ctx, input, signal }) {
      const events = await openJointSampleStream(ctx.db, { actor: ctx.orgActor, commandId: input.commandId, hub: ctx.hub, signal: signal!, ...streamAccessCheck(ctx.db, ctx.hub, ctx.orgActor) });
      for await (const event of events) {
        yield event;
        if (event.type === "ended") return;
      }
    }),
  removeAgent: orgProcedure("admin")
    .input(z.object({ agentId: z.uuid() }))
    .output(ok)
    .mutation(async ({ ctx, input }) => {
      await removeAgent(ctx.db, { actor: ctx.orgActor, agentId: input.agentId });
      return { ok: true as const };
    }),

  /** The set-up recipes agents can run (without their scripts). */
  recipes: orgProcedure("viewer").query(() => recipeSummaries()),
  robots: orgProcedure("viewer")
    .input(z.object({ agentId: z.uuid().optional() }).default({}))
    .output(z.array(robotSchema))
    .query(({ ctx, input }) => listRobots(ctx.db, { actor: ctx.orgActor, agentId: input.agentId })),
  robot: orgProcedure("viewer")
    .input(z.object({ robotId: z.uuid() }))
    .output(robotSchema)
    .query(({ ctx, input }) => getRobot(ctx.db, { actor: ctx.orgActor, robotId: input.robotId })),
  robotChecks: orgProcedure("viewer")
    .input(z.object({ robotId: z.uuid() }))
    .output(robotChecksSchema)
    .query(({ ctx, input }) => lastRobotChecks(ctx.db, { actor: ctx.orgActor, robotId: input.robotId })),
  createRobot: orgProcedure("operator")
    .input(createRobotInput)
    .output(robotSchema)
    .mutation(({ ctx, input }) => createRobot(ctx.db, { actor: ctx.orgActor, input })),
  updateRobot: orgProcedure("operator")
    .input(updateRobotInput)
    .output(robotSchema)
    .mutation(({ ctx, input }) => updateRobot(ctx.db, { actor: ctx.orgActor, input })),
  deleteRobot: orgProcedure("admin")
    .input(z.object({ robotId: z.uuid() }))
    .output(ok)
    .mutation(async ({ ctx, input }) => {
      await deleteRobot(ctx.db, { actor: ctx.orgActor, robotId: input.robotId });
      return { ok: true as const };
    }),
  calibrations: orgProcedure("viewer")
    .input(z.object({ robotId: z.uuid(), limit: z.number().int().min(1).max(100).default(20) }))
    .output(z.array(robotCalibrationSchema))
    .query(({ ctx, input }) => listRobotCalibrations(ctx.db, { actor: ctx.orgActor, ...input })),
  importCalibration: orgProcedure("operator")
    .input(importCalibrationInput)
    .output(robotCalibrationSchema)
    .mutation(({ ctx, input }) => importRobotCalibration(ctx.db, { actor: ctx.orgActor, input })),
  applyCalibration: orgProcedure("operator")
    .input(applyCalibrationInput)
    .output(z.object({ calibration: robotCalibrationSchema, command: agentCommandSchema }))
    .mutation(({ ctx, input }) => applyRobotCalibration(ctx.db, { actor: ctx.orgActor, input })),
  exportCalibration: orgProcedure("viewer")
    .input(z.object({ robotId: z.uuid(), calibrationId: z.uuid().optional() }))
    .output(z.object({ fileName: z.string(), text: z.string() }))
    .query(({ ctx, input }) => exportRobotCalibration(ctx.db, { actor: ctx.orgActor, ...input })),
});
