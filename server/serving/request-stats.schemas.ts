import { z } from "zod";

// Recent request statistics of one endpoint, per UTC minute, as the endpoint page shows them.

export const endpointRequestStatsInput = z.object({
  endpointId: z.uuid(),
  /** How far back, in minutes (the last one is the current, unfinished minute). */
  minutes: z.number().int().min(1).max(1_440).default(60),
});

const latency = { p50Ms: z.number().nullable(), p95Ms: z.number().nullable() };

export const endpointRequestStatsSchema = z.object({
  /** Every minute of the window, oldest first; minutes without requests count 0 with null latencies. */
  minutes: z.array(z.object({ at: z.date(), requests: z.number().int(), errors: z.number().int(), ...latency })),
  totals: z.object({ requests: z.number().int(), errors: z.number().int(), ...latency }),
  /** When the latest request was answered, at any time; null when it never had one. */
  lastRequestAt: z.date().nullable(),
});
export type EndpointRequestStats = z.infer<typeof endpointRequestStatsSchema>;
