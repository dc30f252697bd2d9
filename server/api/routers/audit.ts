import { z } from "zod";
import { auditEventSchema, listAuditInput } from "../../audit/audit.schemas";
import { listAudit } from "../../audit/audit.service";
import { orgProcedure, router } from "../trpc";

export const auditRouter = router({
  list: orgProcedure("admin")
    .input(listAuditInput)
    .output(z.object({ items: z.array(auditEventSchema), nextBefore: z.string().nullable() }))
    .query(({ ctx, input }) => listAudit(ctx.db, { orgId: ctx.orgActor.orgId, input })),
});
