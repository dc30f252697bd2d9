"use client";

import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { Card, CardHeader } from "@/components/ui/card";
import { cn } from "@/components/ui/cn";
import { useTRPC } from "@/components/trpc";
import type { gettingStartedSchema } from "@/server/system/system.schemas";
import type { z } from "zod";

type Counts = z.infer<typeof gettingStartedSchema>;

// The path from a fresh organisation to a policy answering on the fleet, in the order a
// newcomer takes it; each step ticks once the organisation has one of the thing.
const steps: { key: string; title: string; hint: string; href: string; isDone: (c: Counts) => boolean }[] = [
  { key: "token", title: "Create an API token", hint: "The edge agent and scripts sign in with it.", href: "/settings/tokens", isDone: (c) => c.tokens > 0 },
  { key: "agent", title: "Connect the edge agent", hint: "Download it and run its login line on the robot's computer.", href: "/settings/tokens#edge-agent", isDone: (c) => c.agentsConnected > 0 },
  { key: "dataset", title: "Record or import a dataset", hint: "Episodes from the agent, or an existing LeRobot dataset.", href: "/datasets", isDone: (c) => c.datasets > 0 },
  { key: "model", title: "Add a model", hint: "An ONNX policy, uploaded or from a hub; it is validated.", href: "/models", isDone: (c) => c.models > 0 },
  { key: "endpoint", title: "Deploy an endpoint", hint: "Serve a model version over HTTP.", href: "/endpoints/new", isDone: (c) => c.endpoints > 0 },
  { key: "device", title: "Add a device", hint: "A robot computer reached over SSH, to roll models out to.", href: "/fleet", isDone: (c) => c.devices > 0 },
];

function Tick({ isDone }: { isDone: boolean }) {
  return (
    <span aria-hidden className={cn("mt-0.5 flex size-5 shrink-0 items-center justify-center rounded-full border text-xs", isDone ? "border-emerald-600 bg-emerald-600 text-white" : "border-zinc-300 dark:border-zinc-600")}>
      {isDone ? "✓" : ""}
    </span>
  );
}

/** The Overview's checklist; gone once every step is done. */
export function GettingStarted() {
  const trpc = useTRPC();
  // Read afresh whenever the Overview opens: the step just done elsewhere shows ticked.
  const counts = useQuery({ ...trpc.system.gettingStarted.queryOptions(), staleTime: 0, refetchInterval: 30_000 });
  if (!counts.data) return null;
  const done = steps.filter((s) => s.isDone(counts.data)).length;
  if (done === steps.length) return null;
  return (
    <Card className="mb-6" data-testid="getting-started">
      <CardHeader title="Getting started" description={`${done} of ${steps.length} done. Each step opens the page where it is done.`} />
      <ol className="grid gap-x-6 px-5 py-3 sm:grid-cols-2 lg:grid-cols-3">
        {steps.map((step, i) => {
          const isDone = step.isDone(counts.data);
          return (
            <li key={step.key} data-step={step.key} data-done={isDone} className="py-2">
              <Link href={step.href} className="group flex gap-3 rounded-md">
                <Tick isDone={isDone} />
                <span className="min-w-0">
                  <span className={cn("block text-sm font-medium group-hover:underline", isDone ? "text-zinc-500" : "text-brand-600 dark:text-brand-500")}>
                    {i + 1}. {step.title}
                  </span>
                  <span className="sr-only">{isDone ? " (done)" : " (to do)"}</span>
                  <span className="block text-xs text-zinc-500">{step.hint}</span>
                </span>
              </Link>
            </li>
          );
        })}
      </ol>
    </Card>
  );
}
