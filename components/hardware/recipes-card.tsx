"use client";

import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Alert } from "@/components/ui/alert";
import { Badge, type Tone } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { ProgressBar } from "@/components/ui/progress-bar";
import { RelativeTime } from "@/components/ui/time";
import { useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { commandResultSchemas } from "@/server/hardware/hardware.schemas";
import { isInFlight, useAgentCommand } from "./use-agent-command";

const stepTone: Record<string, Tone> = { succeeded: "green", failed: "red", skipped: "amber", "not-run": "neutral" };

/** The set-up recipes for one agent: run one, follow its steps and log live, stop it, go on from a failed step. */
export function RecipesSection({ agentId }: { agentId: string }) {
  const trpc = useTRPC();
  const recipes = useQuery(trpc.hardware.recipes.queryOptions());
  return (
    <div data-field="recipes" className="space-y-3">
      <h3 className="font-medium">Set-up recipes</h3>
      {recipes.data?.map((r) => <RecipeRow key={r.id} agentId={agentId} recipe={r} />)}
    </div>
  );
}

type Summary = { id: string; version: number; title: string; description: string; steps: { id: string; title: string; needsRoot: boolean }[] };

function RecipeRow({ agentId, recipe }: { agentId: string; recipe: Summary }) {
  const { can } = useRole();
  const run = useAgentCommand(agentId, "recipe.run");
  const [path, setPath] = useState("~/lerobot");
  const [extra, setExtra] = useState<"feetech" | "dynamixel">("feetech");
  const params = recipe.id === "install-lerobot" ? { path, extra } : {};
  const command = run.command;
  const raw = command?.result ? commandResultSchemas["recipe.run"].safeParse(command.result) : null;
  const result = raw?.success ? raw.data : null;
  const failed = result?.steps.find((s) => s.status === "failed");
  const needsRoot = recipe.steps.some((s) => s.needsRoot);
  const start = (fromStep?: string) => run.start({ recipe: recipe.id, version: recipe.version, params, ...(fromStep ? { fromStep } : {}) }, 3600);
  return (
    <div className="rounded-md border border-zinc-200 p-3 dark:border-zinc-800" data-recipe={recipe.id}>
      <div className="flex flex-wrap items-center gap-2">
        <span className="font-medium">{recipe.title}</span>
        {needsRoot && <Badge tone="amber">needs root</Badge>}
        {result && <Badge tone={result.outcome === "succeeded" ? "green" : "red"} data-field="outcome">{result.outcome}</Badge>}
        {command && !result && !isInFlight(command.status) && <Badge tone="red">{command.status}</Badge>}
        <span className="ml-auto flex gap-2">
          {can("operator") && (run.isRunning ? <Button size="sm" variant="secondary" onClick={run.stop}>Stop</Button> : <Button size="sm" variant="secondary" onClick={() => (!needsRoot || confirm(`Run “${recipe.title}” on the agent's computer? Some of its steps run as root there.`)) && start()}>Run</Button>)}
          {can("operator") && failed && !run.isRunning && <Button size="sm" variant="secondary" onClick={() => start(failed.id)}>Retry from “{failed.title}”</Button>}
        </span>
      </div>
      <p className="mt-1 text-xs text-zinc-500">{recipe.description}</p>
      {recipe.id === "install-lerobot" && can("operator") && (
        <div className="mt-2 flex flex-wrap gap-3 text-xs">
          <label>Folder <input value={path} onChange={(e) => setPath(e.target.value)} className="ml-1 h-8 rounded border border-zinc-300 px-2 font-mono dark:border-zinc-700 dark:bg-zinc-950" /></label>
          <label>Motors <select value={extra} onChange={(e) => setExtra(e.target.value as "feetech" | "dynamixel")} className="ml-1 h-8 rounded border border-zinc-300 px-2 dark:border-zinc-700 dark:bg-zinc-950"><option value="feetech">Feetech (SO-100, SO-101)</option><option value="dynamixel">Dynamixel (Koch)</option></select></label>
        </div>
      )}
      {run.error && <Alert className="mt-2">{run.error}</Alert>}
      {command && (
        <div className="mt-2 space-y-2">
          {isInFlight(command.status) && command.progress !== null && <ProgressBar value={command.progress} label={`${recipe.title} progress`} />}
          <ol className="space-y-0.5 text-xs">
            {(result?.steps ?? recipe.steps.map((s) => ({ ...s, status: "not-run" as const, note: null }))).map((s) => (
              <li key={s.id} data-step-id={s.id} className="flex flex-wrap items-center gap-2">
                <Badge tone={stepTone[s.status] ?? "neutral"}>{s.status === "not-run" ? "not run" : s.status}</Badge>
                <span>{s.title}</span>
                {s.note && <span className="text-zinc-500">{s.note}</span>}
              </li>
            ))}
          </ol>
          {command.log && <pre aria-label={`${recipe.title} log`} className="max-h-64 overflow-auto rounded bg-zinc-100 p-2 font-mono text-[11px] leading-tight dark:bg-zinc-950">{command.log}</pre>}
          <p className="text-xs text-zinc-500">{command.createdBy} · <RelativeTime date={command.createdAt} /></p>
        </div>
      )}
    </div>
  );
}
