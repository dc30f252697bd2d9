"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { SelectField, TextField } from "@/components/ui/field";
import { PageHeader } from "@/components/ui/page-header";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { ROBOT_TYPES, type RobotType } from "@/server/hardware/hardware.schemas";

export function RobotsPage() {
  const trpc = useTRPC();
  const { can } = useRole();
  const robots = useQuery({ ...trpc.hardware.robots.queryOptions({}), refetchInterval: 10_000 });
  return (
    <>
      <PageHeader title="Robots" description="Arms plugged into an agent's computer: set each up from here — its port, motor ids, power, calibration — and watch its joints live." />
      {robots.error && <Alert className="mb-4">{errorMessage(robots.error)}</Alert>}
      {robots.data?.length === 0 && <p className="mb-6 rounded-md border border-dashed border-zinc-300 px-5 py-8 text-center text-sm text-zinc-500 dark:border-zinc-700">No arm yet. Add one below, on an agent that is connected.</p>}
      {robots.data && robots.data.length > 0 && (
        <Card className="mb-6">
          <CardBody>
            <table className="w-full text-left text-sm" data-field="robots">
              <thead className="text-xs text-zinc-500"><tr><th className="py-1">Arm</th><th>Type</th><th>Agent</th><th>Port</th><th>Calibration</th></tr></thead>
              <tbody>
                {robots.data.map((r) => (
                  <tr key={r.id} data-robot={r.name} className="border-t border-zinc-100 dark:border-zinc-800">
                    <td className="py-2"><Link href={`/robots/${r.id}`} className="font-medium text-brand-600 hover:underline">{r.name}</Link></td>
                    <td>{ROBOT_TYPES[r.type].label}</td>
                    <td>{r.agentName} <Badge tone={r.isAgentOnline ? "green" : "neutral"}>{r.isAgentOnline ? "online" : "offline"}</Badge></td>
                    <td className="font-mono text-xs">{r.port ?? "—"}</td>
                    <td className="text-xs">{r.calibration ? <>{r.calibration.source}, <RelativeTime date={r.calibration.createdAt} /></> : <span className="text-zinc-500">not calibrated</span>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </CardBody>
        </Card>
      )}
      {can("operator") && <AddRobotCard />}
    </>
  );
}

function AddRobotCard() {
  const trpc = useTRPC();
  const router = useRouter();
  const queryClient = useQueryClient();
  // Looked at again while there is none: the agent may be connecting right now.
  const agents = useQuery({ ...trpc.hardware.agents.queryOptions(), refetchInterval: (q) => (q.state.data?.length ? 30_000 : 3_000) });
  const create = useMutation(
    trpc.hardware.createRobot.mutationOptions({
      onSuccess: (robot) => {
        void queryClient.invalidateQueries({ queryKey: trpc.hardware.robots.queryKey({}) });
        router.push(`/robots/${robot.id}`);
      },
    }),
  );
  const types = Object.entries(ROBOT_TYPES).map(([value, t]) => ({ value, label: t.label }));
  return (
    <Card>
      <CardHeader title="Add an arm" description="Its name is LeRobot's robot id: the calibration file on the agent's computer is named after it (e.g. my_follower)." />
      <CardBody>
        {!agents.data ? (
          <p className="text-sm text-zinc-500">{agents.error ? errorMessage(agents.error) : "Loading the agents…"}</p>
        ) : agents.data.length === 0 ? (
          <p className="text-sm text-zinc-500">Connect an agent first (<Link href="/agents#connect-agent" className="text-brand-600 hover:underline">Agents</Link>).</p>
        ) : (
          <form
            className="grid gap-4 sm:grid-cols-3"
            onSubmit={(e) => {
              e.preventDefault();
              const f = new FormData(e.currentTarget);
              create.mutate({ agentId: String(f.get("agentId")), name: String(f.get("name")), type: String(f.get("type")) as RobotType, port: null });
            }}
          >
            <TextField label="Name" name="name" required placeholder="my_follower" />
            <SelectField label="Type" name="type" options={types} defaultValue="so101_follower" />
            <SelectField label="Agent" name="agentId" options={(agents.data ?? []).map((a) => ({ value: a.id, label: `${a.name}${a.isOnline ? "" : " (offline)"}` }))} />
            <div className="sm:col-span-3">
              <Button type="submit" disabled={create.isPending || !agents.data?.length}>Add and set up</Button>
            </div>
            {create.error && <Alert className="sm:col-span-3">{errorMessage(create.error)}</Alert>}
          </form>
        )}
      </CardBody>
    </Card>
  );
}
