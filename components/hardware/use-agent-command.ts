"use client";

import { useMutation, useQuery } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import { useCallback, useEffect, useRef, useState } from "react";
import type { z } from "zod";
import { errorMessage, useTRPC } from "@/components/trpc";
import type { agentCommandSchema, commandResultSchemas, JointSample } from "@/server/hardware/hardware.schemas";
import { commandResultSchemas as resultSchemas } from "@/server/hardware/hardware.schemas";

type Command = z.infer<typeof agentCommandSchema>;
export type ResultKind = keyof typeof commandResultSchemas;
export type CommandResult<K extends ResultKind> = z.infer<(typeof commandResultSchemas)[K]>;

export const isInFlight = (status: Command["status"]) => status === "queued" || status === "sent" || status === "running";
const NO_COMMAND = "00000000-0000-0000-0000-000000000000";

/**
 * One command to an agent at a time, followed until it ends: what it is doing, its result
 * (checked against the command's result schema) or why it failed.
 */
export function useAgentCommand<K extends ResultKind>(agentId: string, kind: K) {
  const trpc = useTRPC();
  const [commandId, setCommandId] = useState<string | null>(null);
  const send = useMutation(trpc.hardware.sendCommand.mutationOptions({ onSuccess: (c) => setCommandId(c.id) }));
  const cancel = useMutation(trpc.hardware.cancelCommand.mutationOptions());
  const query = useQuery({
    ...trpc.hardware.command.queryOptions({ commandId: commandId ?? NO_COMMAND }),
    enabled: Boolean(commandId),
    refetchInterval: (q) => (q.state.data && !isInFlight(q.state.data.status) ? false : 300),
  });
  const command = commandId && query.data?.id === commandId ? query.data : null;
  const parsed = command?.status === "succeeded" ? resultSchemas[kind].safeParse(command.result) : null;
  const result = (parsed?.success ? parsed.data : null) as CommandResult<K> | null;
  const isRunning = send.isPending || (commandId !== null && (!command || isInFlight(command.status)));
  const error = send.error
    ? errorMessage(send.error)
    : cancel.error && command && isInFlight(command.status)
      ? `It was not stopped: ${errorMessage(cancel.error)}`
    : command && (command.status === "failed" || command.status === "cancelled")
      ? (command.error ?? command.status)
      : parsed && !parsed.success
        ? `The agent answered ${kind} in a shape this portal does not know (update gantry-agent)`
        : null;
  const start = useCallback(
    (input: Record<string, unknown>, timeoutSeconds = 30) => {
      setCommandId(null);
      send.reset();
      send.mutate({ agentId, kind, input, timeoutSeconds });
    },
    [agentId, kind, send],
  );
  const stop = useCallback(() => {
    if (commandId) cancel.mutate({ commandId });
  }, [cancel, commandId]);
  // A stream (live joints, a range recording) holds the arm's port: leaving the page ends it.
  const live = useRef<{ id: string | null; isRunning: boolean }>({ id: null, isRunning: false });
  live.current = { id: commandId, isRunning: Boolean(command && isInFlight(command.status)) };
  const cancelRef = useRef(cancel.mutate);
  cancelRef.current = cancel.mutate;
  useEffect(() => {
    if (kind !== "joints.stream" && kind !== "calibration.range") return;
    return () => {
      if (live.current.id && live.current.isRunning) cancelRef.current({ commandId: live.current.id });
    };
  }, [kind]);
  return { start, stop, command, commandId, result, error, isRunning };
}

/** The joint readings a running command streams, kept for the last `keepMs`; re-rendered at most once a frame. */
export function useJointSamples(commandId: string | null, keepMs = 10_000) {
  const trpc = useTRPC();
  const samples = useRef<JointSample[]>([]);
  const extremes = useRef<{ min: number[]; max: number[] } | null>(null);
  const [, setFrame] = useState(0);
  const pending = useRef(false);
  useEffect(() => {
    samples.current = [];
    extremes.current = null;
    setFrame((n) => n + 1);
  }, [commandId]);
  const subscription = useSubscription(
    trpc.hardware.onJointSamples.subscriptionOptions(
      { commandId: commandId ?? NO_COMMAND },
      {
        enabled: Boolean(commandId),
        onData: (event) => {
          if (event.type !== "samples") return;
          for (const s of event.samples) {
            samples.current.push(s);
            const ext = (extremes.current ??= { min: [...s.raw], max: [...s.raw] });
            s.raw.forEach((v, i) => {
              ext.min[i] = Math.min(ext.min[i] ?? v, v);
              ext.max[i] = Math.max(ext.max[i] ?? v, v);
            });
          }
          const last = samples.current.at(-1)!.t;
          const firstKept = samples.current.findIndex((s) => s.t >= last - keepMs);
          if (firstKept > 0) samples.current.splice(0, firstKept);
          if (!pending.current) {
            pending.current = true;
            requestAnimationFrame(() => {
              pending.current = false;
              setFrame((n) => n + 1);
            });
          }
        },
      },
    ),
  );
  // Why the portal ended the stream (access lost while watching), for the page to say.
  const streamError = subscription.status === "error" ? (subscription.error?.message ?? "The live joints stopped") : null;
  return { samples: samples.current, latest: samples.current.at(-1) ?? null, extremes: extremes.current, streamError };
}
