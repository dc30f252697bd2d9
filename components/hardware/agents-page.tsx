"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { RecipesSection } from "./recipes-card";
import { useEffect, useState } from "react";
import type { z } from "zod";
import { Alert } from "@/components/ui/alert";
import { Badge, type Tone } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { PageHeader } from "@/components/ui/page-header";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { isInFlight, type agentCommandSchema, type agentSchema } from "@/server/hardware/hardware.schemas";

type Agent = z.infer<typeof agentSchema>;
type Command = z.infer<typeof agentCommandSchema>;

const statusTone: Record<Command["status"], Tone> = { queued: "neutral", sent: "blue", running: "blue", succeeded: "green", failed: "red", cancelled: "amber" };

function formatBytes(bytes: number): string {
  const gib = bytes / 1024 ** 3;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${Math.round(bytes / 1024 ** 2)} MiB`;
}

/** What a finished command answered, in a line. */
function outcomeOf(command: Command): string {
  if (command.status === "failed" || command.status === "cancelled") return command.error ?? command.status;
  if (command.status !== "succeeded") return command.step ?? command.status;
  const took = command.finishedAt ? command.finishedAt.getTime() - command.createdAt.getTime() : null;
  if (command.kind === "ping") return `answered${took !== null ? ` in ${took} ms round trip` : ""}`;
  if (command.kind === "host.facts") return "facts refreshed";
  return "done";
}

export function AgentsPage() {
  const trpc = useTRPC();
  const agents = useQuery({ ...trpc.hardware.agents.queryOptions(), refetchInterval: 5_000 });
  return (
    <>
      <PageHeader title="Agents" description="gantry-agent on the robots' computers, connected to this portal: whether each is online, what its host is, and the commands sent to it." />
      {agents.error && <Alert className="mb-4">{errorMessage(agents.error)}</Alert>}
      {agents.data?.length === 0 && <p className="mb-6 rounded-md border border-dashed border-zinc-300 px-5 py-8 text-center text-sm text-zinc-500 dark:border-zinc-700">No agent has connected yet.</p>}
      <div className="space-y-6">
        {agents.data?.map((agent) => <AgentCard key={agent.id} agent={agent} />)}
      </div>
      <ConnectCard />
    </>
  );
}

function AgentCard({ agent }: { agent: Agent }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { can } = useRole();
  const commands = useQuery({
    ...trpc.hardware.commands.queryOptions({ agentId: agent.id, limit: 10 }),
    // Fast while something is on its way, so a ping's answer shows as soon as it is in.
    refetchInterval: (query) => ((query.state.data ?? []).some((c) => isInFlight(c.status)) ? 500 : 5_000),
  });
  const refresh = () => {
    void queryClient.invalidateQueries({ queryKey: trpc.hardware.commands.queryKey({ agentId: agent.id, limit: 10 }) });
    void queryClient.invalidateQueries({ queryKey: trpc.hardware.agents.queryKey() });
  };
  const robots = useQuery(trpc.hardware.robots.queryOptions({ agentId: agent.id }));
  const send = useMutation(trpc.hardware.sendCommand.mutationOptions({ onSuccess: refresh }));
  const remove = useMutation(trpc.hardware.removeAgent.mutationOptions({ onSuccess: refresh }));
  const hasFactsInFlight = commands.data?.some((c) => c.kind === "host.facts" && isInFlight(c.status));
  // When a facts refresh ends, read the agent again: its facts changed.
  const [wasRefreshing, setWasRefreshing] = useState(false);
  useEffect(() => {
    if (wasRefreshing && !hasFactsInFlight) void queryClient.invalidateQueries({ queryKey: trpc.hardware.agents.queryKey() });
    setWasRefreshing(Boolean(hasFactsInFlight));
  }, [hasFactsInFlight, wasRefreshing, queryClient, trpc]);
  const facts = agent.hostFacts;

  return (
    <Card data-agent={agent.name}>
      <CardHeader
        title={
          <span className="flex items-center gap-2">
            {agent.name}
            <Badge tone={agent.isOnline ? "green" : "neutral"}>{agent.isOnline ? "online" : "offline"}</Badge>
          </span>
        }
        description={
          <>
            {agent.lastSeenAt ? <>last seen <RelativeTime date={agent.lastSeenAt} /></> : "never seen"}
            {agent.version ? ` · gantry-agent ${agent.version}` : ""}
            {agent.tokenName ? ` · token “${agent.tokenName}”` : ""}
          </>
        }
        actions={
          <>
            {can("operator") && (
              <>
                <Button size="sm" variant="secondary" disabled={send.isPending} onClick={() => send.mutate({ agentId: agent.id, kind: "ping", input: {} })}>Ping</Button>
                <Button size="sm" variant="secondary" disabled={send.isPending || hasFactsInFlight} onClick={() => send.mutate({ agentId: agent.id, kind: "host.facts", input: {} })}>Refresh facts</Button>
              </>
            )}
            {can("admin") && (
              <Button size="sm" variant="secondary" disabled={remove.isPending} onClick={() => confirm(`Remove ${agent.name}? Its command history goes with it; a running agent registers again when it reconnects.`) && remove.mutate({ agentId: agent.id })}>Remove</Button>
            )}
          </>
        }
      />
      <CardBody className="space-y-4 text-sm">
        {(send.error || remove.error) && <Alert>{errorMessage(send.error ?? remove.error)}</Alert>}
        {facts ? (
          <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1" data-field="facts">
            <dt className="text-zinc-500">Host</dt>
            <dd>{facts.hostname} · {facts.arch}</dd>
            <dt className="text-zinc-500">OS</dt>
            <dd data-fact="os">{facts.os} ({facts.kernel})</dd>
            <dt className="text-zinc-500">CPU</dt>
            <dd data-fact="cpu">{facts.cpu.model}, {facts.cpu.cores} cores · {formatBytes(facts.memoryBytes)} memory</dd>
            <dt className="text-zinc-500">Python</dt>
            <dd data-fact="python">{facts.python.version ?? <span className="text-zinc-500">none — {facts.python.note}</span>}</dd>
            <dt className="text-zinc-500">lerobot</dt>
            <dd data-fact="lerobot">{facts.lerobot.version ?? <span className="text-zinc-500">not found — {facts.lerobot.note}</span>}</dd>
            <dt className="text-zinc-500">Serial adapters</dt>
            <dd data-fact="serial">
              {facts.serialAdapters.length === 0 ? (
                <span className="text-zinc-500">none plugged in</span>
              ) : (
                <ul>{facts.serialAdapters.map((s) => <li key={s.path} className="font-mono text-xs">{s.path}{s.byId ? ` (${s.byId})` : ""}</li>)}</ul>
              )}
            </dd>
          </dl>
        ) : (
          <p className="text-zinc-500">No host facts yet: the agent sends them when it connects.</p>
        )}
        {agent.factsAt && <p className="text-xs text-zinc-500">Facts from <RelativeTime date={agent.factsAt} /></p>}
        <RecipesSection agentId={agent.id} />
        <div data-field="robots">
          <h3 className="mb-1 font-medium">Arms</h3>
          {robots.data?.length === 0 && <p className="text-zinc-500">None yet: <Link href="/robots" className="text-brand-600 hover:underline">add an arm</Link> plugged into this computer.</p>}
          <ul className="flex flex-wrap gap-3">
            {robots.data?.map((r) => <li key={r.id}><Link href={`/robots/${r.id}`} className="text-brand-600 hover:underline">{r.name}</Link> <span className="text-xs text-zinc-500">{r.type}{r.port ? ` on ${r.port}` : ""}</span></li>)}
          </ul>
        </div>
        <div>
          <h3 className="mb-1 font-medium">Recent commands</h3>
          {commands.data?.length === 0 && <p className="text-zinc-500">None yet.</p>}
          <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
            {commands.data?.map((c) => (
              <li key={c.id} data-command={c.kind} data-status={c.status} className="flex flex-wrap items-center gap-3 py-1.5">
                <span className="w-24 font-mono text-xs">{c.kind}</span>
                <Badge tone={statusTone[c.status]}>{c.status}</Badge>
                <span className="min-w-0 flex-1 text-xs" data-field="outcome">{outcomeOf(c)}</span>
                <span className="text-xs text-zinc-500">{c.createdBy} · <RelativeTime date={c.createdAt} /></span>
              </li>
            ))}
          </ul>
        </div>
      </CardBody>
    </Card>
  );
}

/** How to connect an agent: the same download and login as the Overview checklist, then `connect`. */
function ConnectCard() {
  const [portal, setPortal] = useState("");
  useEffect(() => setPortal(window.location.origin), []);
  const lines = [`node gantry-agent.cjs login --portal ${portal || "<portal address>"} --token <token>`, "node gantry-agent.cjs connect --service"];
  return (
    <Card className="mt-6" id="connect-agent">
      <CardHeader
        title="Connect an agent"
        description="The agent dials out to this portal, so the robot's computer may sit behind NAT; it needs an API token with the write scope."
        actions={<a href="/api/agent/download" download className="inline-flex h-10 items-center rounded-md bg-brand-600 px-4 text-sm font-medium text-white hover:bg-brand-700">Download gantry-agent.cjs</a>}
      />
      <CardBody className="space-y-2 text-sm">
        <p>
          On the robot&apos;s computer (Node.js 20 or newer), sign in with a token made under <a href="/settings/tokens#edge-agent" className="text-brand-600 hover:underline">Settings → API tokens</a>, then connect. <code className="font-mono text-xs">--service</code> keeps reconnecting for ever, for a systemd unit; <code className="font-mono text-xs">--name</code> names the agent (default: the host name).
        </p>
        <pre aria-label="Agent connect commands" className="overflow-x-auto rounded-md bg-zinc-100 px-3 py-2 font-mono text-xs dark:bg-zinc-950">{lines.join("\n")}</pre>
      </CardBody>
    </Card>
  );
}
