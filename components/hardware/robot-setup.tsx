"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import dynamic from "next/dynamic";
import Link from "next/link";
import { useState } from "react";
import type { z } from "zod";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { PageHeader } from "@/components/ui/page-header";
import { ProgressBar } from "@/components/ui/progress-bar";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { inMotorOrder, type Calibration } from "@/server/hardware/calibration.schemas";
import { isInFlight, ROBOT_TYPES, type robotSchema } from "@/server/hardware/hardware.schemas";
import { buildWizardCalibration } from "@/server/hardware/wizard-calibration";
import { findUnpluggedPort } from "@/server/hardware/port-diff";
import { twinPose } from "@/server/captures/twin-pose";
import { useAgentCommand, type CommandResult } from "./use-agent-command";
import { JointBars, LiveJoints } from "./live-joints";

type Robot = z.infer<typeof robotSchema>;

// WebGL only in the browser: the 3D view is loaded there, on demand.
const SceneCanvas = dynamic(() => import("@/components/captures/scene-canvas"), { ssr: false, loading: () => <p className="text-xs text-zinc-500">Loading the 3D view…</p> });

/** A joint this far from the middle of its turn (in encoder counts) risks the homing offset's ±2047 limit. */
const MID = 2047;
const NEAR_MID = 1000;

export function RobotSetupPage({ robotId }: { robotId: string }) {
  const trpc = useTRPC();
  const robot = useQuery({ ...trpc.hardware.robot.queryOptions({ robotId }), refetchInterval: 5_000 });
  if (robot.error) return <Alert>{errorMessage(robot.error)}</Alert>;
  if (!robot.data) return <p className="text-sm text-zinc-500">Loading…</p>;
  const r = robot.data;
  return (
    <>
      <PageHeader
        title={r.name}
        description={
          <>
            {ROBOT_TYPES[r.type].label} on <Link href="/agents" className="text-brand-600 hover:underline">{r.agentName}</Link>{" "}
            <Badge tone={r.isAgentOnline ? "green" : "neutral"}>{r.isAgentOnline ? "agent online" : "agent offline"}</Badge>
            {r.port && <> · <span className="font-mono text-xs">{r.port}</span></>}
          </>
        }
      />
      {!r.isAgentOnline && <Alert tone="amber" className="mb-4">The agent {r.agentName} is offline: start <code className="font-mono text-xs">gantry-agent connect</code> on the arm&apos;s computer. Commands wait for it until their deadline.</Alert>}
      <div className="space-y-6">
        <PortStep robot={r} />
        <MotorsStep robot={r} />
        <PowerStep robot={r} />
        <CalibrationStep robot={r} />
        <LiveStep robot={r} />
        <HistoryStep robot={r} />
      </div>
    </>
  );
}

/**
 * The same check made on an earlier visit (on this arm's agent and port, since the port was set),
 * until one is run on this visit: coming back to a set-up arm shows what its checks found, with
 * when they were made.
 */
function useEarlierCheck<K extends "scan" | "power">(robotId: string, which: K, isRunThisVisit: boolean) {
  const trpc = useTRPC();
  const checks = useQuery(trpc.hardware.robotChecks.queryOptions({ robotId }));
  return isRunThisVisit ? null : (checks.data?.[which] ?? null);
}

function StepStatus({ isDone, label }: { isDone: boolean; label?: string }) {
  return <Badge tone={isDone ? "green" : "neutral"}>{label ?? (isDone ? "done" : "to do")}</Badge>;
}

function CommandLine({ command, error }: { command: { status: string; step: string | null; progress: number | null } | null; error: string | null }) {
  if (error) return <Alert data-field="command-error">{error}</Alert>;
  if (!command || !isInFlight(command.status)) return null;
  return (
    <div className="space-y-1" data-field="command-progress">
      <p className="text-xs text-zinc-500">{command.status === "queued" ? "Waiting for the agent…" : (command.step ?? "Working…")}</p>
      {command.progress !== null && <ProgressBar value={command.progress} label="Command progress" />}
    </div>
  );
}

function useRobotUpdate(robotId: string) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  // A new port has none of the old one's checks.
  return useMutation(
    trpc.hardware.updateRobot.mutationOptions({
      onSuccess: () => Promise.all([queryClient.invalidateQueries({ queryKey: trpc.hardware.robot.queryKey({ robotId }) }), queryClient.invalidateQueries({ queryKey: trpc.hardware.robotChecks.queryKey({ robotId }) })]),
    }),
  );
}

type PortList = CommandResult<"ports.list">["ports"];

/** 1. The arm's port: pick it from the list, or find it the way LeRobot does, by unplugging it. */
function PortStep({ robot }: { robot: Robot }) {
  const { can } = useRole();
  const list = useAgentCommand(robot.agentId, "ports.list");
  const update = useRobotUpdate(robot.id);
  // The unplug diff: the list before (and which command made it), then a list made after it.
  const [before, setBefore] = useState<{ ports: PortList; commandId: string | null } | null>(null);
  const ports = list.result?.ports ?? null;
  const isListedAgain = Boolean(before && list.result && list.commandId !== before.commandId);
  const found = before && ports && isListedAgain ? findUnpluggedPort(before.ports, ports) : null;
  const choose = (path: string) => update.mutate({ robotId: robot.id, port: path });

  return (
    <Card data-step="port">
      <CardHeader title={<span className="flex items-center gap-2">1. Port <StepStatus isDone={Boolean(robot.port)} /></span>} description="Which serial port on the agent's computer the arm's bus board is on." />
      <CardBody className="space-y-3 text-sm">
        {robot.port && <p>Using <span className="font-mono text-xs" data-field="port">{robot.port}</span>.</p>}
        {can("operator") && (
          <div className="flex flex-wrap gap-2">
            <Button size="sm" variant="secondary" disabled={list.isRunning} onClick={() => { setBefore(null); list.start({}); }}>List ports</Button>
            <Button size="sm" variant="secondary" disabled={list.isRunning || !ports} onClick={() => ports && setBefore({ ports, commandId: list.commandId })}>Find by unplugging</Button>
          </div>
        )}
        <CommandLine command={list.command} error={list.error} />
        {before && !found?.port && (
          <Alert tone="blue" title="Unplug the arm's USB cable">Unplug the bus board&apos;s USB cable (not its power), then <Button size="sm" variant="secondary" className="ml-1" disabled={list.isRunning} onClick={() => list.start({})}>List again</Button></Alert>
        )}
        {found && (found.port ? (
          <Alert tone="green" title="Found it">
            <span data-field="unplugged">{found.port.path}</span> disappeared: it is the arm&apos;s port. Plug the cable back in, then{" "}
            <Button size="sm" className="ml-1" onClick={() => { choose(found.port!.byId ?? found.port!.path); setBefore(null); }}>Use {found.port.byId ?? found.port.path}</Button>
          </Alert>
        ) : (
          <Alert tone="amber">{found.reason}</Alert>
        ))}
        {ports && !before && (
          ports.length === 0 ? (
            <p className="text-zinc-500">No serial ports on {robot.agentName} (looked in {list.result?.dir}). Plug the bus board in with a data cable; on Ubuntu, brltty can take CH340 adapters (sudo apt remove brltty).</p>
          ) : (
            <table className="w-full text-left text-xs" data-field="ports">
              <thead className="text-zinc-500"><tr><th className="py-1">Port</th><th>Adapter</th><th>Serial number</th><th /></tr></thead>
              <tbody>
                {ports.map((p) => (
                  <tr key={p.path} data-port={p.path} className="border-t border-zinc-100 dark:border-zinc-800">
                    <td className="py-1 font-mono">{p.path}{p.byId && <div className="text-zinc-500">{p.byId}</div>}</td>
                    <td>{p.adapter ?? p.product ?? "—"}{p.vendorId && <span className="text-zinc-500"> ({p.vendorId}:{p.productId})</span>}</td>
                    <td>{p.serialNumber ?? "—"}</td>
                    <td className="text-right">{can("operator") && <Button size="sm" variant="secondary" onClick={() => choose(p.byId ?? p.path)}>Use</Button>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        )}
        {update.error && <Alert>{errorMessage(update.error)}</Alert>}
      </CardBody>
    </Card>
  );
}

/** 2. Motor ids, LeRobot's way: one motor on the bus at a time, gripper first. */
function MotorsStep({ robot }: { robot: Robot }) {
  const { can } = useRole();
  const setup = useAgentCommand(robot.agentId, "motors.setup");
  const scan = useAgentCommand(robot.agentId, "motors.scan");
  const earlier = useEarlierCheck(robot.id, "scan", scan.command !== null);
  const scanResult = scan.result ?? earlier?.result ?? null;
  const [done, setDone] = useState<Record<string, string>>({});
  const order = [...robot.motors].reverse();
  const next = order.find((m) => !done[m.name]) ?? null;
  const [current, setCurrent] = useState<string | null>(null);
  const result = setup.result;
  if (result && current === result.motor && !done[result.motor]) {
    setDone((d) => ({ ...d, [result.motor]: result.was.id === result.id && result.was.baud === result.baud ? `already id ${result.id}` : `id ${result.was.id} at ${result.was.baud} baud → id ${result.id} at ${result.baud} baud` }));
  }
  const expected = robot.motors.map((m) => m.id);
  const foundIds = scanResult?.found.map((f) => f.id) ?? [];
  const missing = expected.filter((id) => !foundIds.includes(id));
  const isAllThere = Boolean(scanResult) && missing.length === 0 && scanResult!.problems.length === 0;

  return (
    <Card data-step="motors">
      <CardHeader title={<span className="flex items-center gap-2">2. Motors <StepStatus isDone={isAllThere} /></span>} description="Each motor gets its id and 1 Mbaud. New motors all answer as id 1, so they are set up one at a time, gripper first." />
      <CardBody className="space-y-3 text-sm">
        {!robot.port && <p className="text-zinc-500">Find the port first.</p>}
        <ol className="space-y-1">
          {order.map((m) => (
            <li key={m.name} data-motor={m.name} className="flex items-center gap-3">
              <span className="w-28 font-mono text-xs">{m.name}</span>
              <span className="w-12 text-xs text-zinc-500">id {m.id}</span>
              {done[m.name] ? <Badge tone="green">{done[m.name]}</Badge> : setup.isRunning && current === m.name ? <Badge tone="blue">setting up…</Badge> : null}
            </li>
          ))}
        </ol>
        {robot.port && next && can("operator") && (
          <div className="rounded-md border border-zinc-200 p-3 dark:border-zinc-800" data-field="next-motor">
            <p className="mb-2">Connect <strong>only the {next.name} motor</strong> to the bus board (one 3-pin cable), with the power on, then:</p>
            <Button size="sm" disabled={setup.isRunning} onClick={() => { setCurrent(next.name); setup.start({ port: robot.port, protocol: robot.protocol, motor: next.name, id: next.id, baud: 1_000_000 }, 90); }}>Set up {next.name} as id {next.id}</Button>
          </div>
        )}
        <CommandLine command={setup.command} error={setup.error} />
        {robot.port && can("operator") && (
          <div className="flex items-center gap-2">
            <Button size="sm" variant="secondary" disabled={scan.isRunning} onClick={() => scan.start({ port: robot.port, protocol: robot.protocol, bauds: [1_000_000] }, 60)}>Check all motors</Button>
            <span className="text-xs text-zinc-500">with every motor daisy-chained again</span>
          </div>
        )}
        <CommandLine command={scan.command} error={scan.error} />
        {scanResult && (
          <div data-field="scan">
            {earlier && !scan.result && <p className="mb-1 text-xs text-zinc-500" data-field="checked-earlier">Checked <RelativeTime date={earlier.at} />:</p>}
            {isAllThere ? (
              <Alert tone="green">All {expected.length} motors answer at 1 Mbaud: {scanResult.found.map((f) => `id ${f.id} (${f.modelName ?? `model ${f.model}`})`).join(", ")}.</Alert>
            ) : (
              <Alert tone="amber">
                {missing.length > 0 && <p>Not answering: {missing.map((id) => robot.motors.find((m) => m.id === id)?.name ?? id).join(", ")}. Check their cables, or set them up again one at a time.</p>}
                {scanResult.problems.map((p) => <p key={`${p.id}-${p.baud}`}>id {p.id}: {p.reason}</p>)}
              </Alert>
            )}
          </div>
        )}
      </CardBody>
    </Card>
  );
}

/** 3. The supply: a follower's 12 V motors on a leader's 5 V supply, or the reverse, is caught before anything moves. */
function PowerStep({ robot }: { robot: Robot }) {
  const { can } = useRole();
  const power = useAgentCommand(robot.agentId, "motors.power");
  const earlier = useEarlierCheck(robot.id, "power", power.command !== null);
  const r = power.result ?? earlier?.result ?? null;
  return (
    <Card data-step="power">
      <CardHeader title={<span className="flex items-center gap-2">3. Power <StepStatus isDone={r?.verdict === "ok"} /></span>} description={`A ${robot.role} ${robot.role === "follower" ? "runs on a 12 V supply" : "runs on a 5–7.4 V supply"}; the motors report what they get.`} />
      <CardBody className="space-y-3 text-sm">
        {robot.port && can("operator") && <Button size="sm" variant="secondary" disabled={power.isRunning} onClick={() => power.start({ port: robot.port, protocol: robot.protocol, ids: robot.motors.map((m) => m.id), role: robot.role })}>Check the supply</Button>}
        <CommandLine command={power.command} error={power.error} />
        {r && (
          <div data-field="power" data-verdict={r.verdict}>
            {earlier && !power.result && <p className="mb-1 text-xs text-zinc-500" data-field="checked-earlier">Checked <RelativeTime date={earlier.at} />:</p>}
            <Alert tone={r.verdict === "ok" ? "green" : r.verdict === "wrong-supply" ? "red" : "amber"}>{r.message}</Alert>
            <ul className="mt-2 flex flex-wrap gap-3 text-xs">
              {r.readings.map((x) => <li key={x.id}>id {x.id}: {x.volts !== null ? `${x.volts.toFixed(1)} V` : x.error}</li>)}
            </ul>
          </div>
        )}
      </CardBody>
    </Card>
  );
}

/** 4. Calibration: the middle of every joint (homing), then its range of motion; saved to LeRobot's file and the motors. */
function CalibrationStep({ robot }: { robot: Robot }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { can } = useRole();
  const watch = useAgentCommand(robot.agentId, "joints.stream");
  const home = useAgentCommand(robot.agentId, "calibration.home");
  const range = useAgentCommand(robot.agentId, "calibration.range");
  const [rangeSeconds, setRangeSeconds] = useState(20);
  const apply = useMutation(
    trpc.hardware.applyCalibration.mutationOptions({
      onSuccess: () => {
        void queryClient.invalidateQueries({ queryKey: trpc.hardware.robot.queryKey({ robotId: robot.id }) });
        void queryClient.invalidateQueries({ queryKey: trpc.hardware.calibrations.queryKey({ robotId: robot.id }) });
      },
    }),
  );
  const writeId = apply.data?.command.id ?? null;
  const writeStatus = useQuery({ ...trpc.hardware.command.queryOptions({ commandId: writeId ?? "00000000-0000-0000-0000-000000000000" }), enabled: Boolean(writeId), refetchInterval: (q) => (q.state.data && !isInFlight(q.state.data.status) ? false : 300) });
  const bus = { port: robot.port, protocol: robot.protocol, motors: robot.motors };
  const offsets = home.result?.homingOffsets ?? null;
  // A range recorded before the latest homing was read under other offsets: it does not count.
  const isRangeCurrent = Boolean(range.command && home.command && range.command.createdAt > home.command.createdAt);
  const ranges = isRangeCurrent ? (range.result?.ranges ?? null) : null;
  const calibration: Calibration | null =
    offsets && ranges ? buildWizardCalibration({ motors: robot.motors, homingOffsets: offsets, ranges, driveModes: home.result?.driveModes, inverted: ROBOT_TYPES[robot.type].inverted }) : null;
  const write = writeStatus.data;

  return (
    <Card data-step="calibration">
      <CardHeader title={<span className="flex items-center gap-2">4. Calibration <StepStatus isDone={Boolean(robot.calibration)} label={robot.calibration ? "calibrated" : undefined} /></span>} description="LeRobot's two steps: every joint to the middle of its range, then each through its whole range." />
      <CardBody className="space-y-4 text-sm">
        {!robot.port && <p className="text-zinc-500">Find the port and set up the motors first.</p>}
        {robot.port && can("operator") && (
          <>
            <section className="space-y-2" data-field="homing">
              <h3 className="font-medium">a. Middle of the range</h3>
              <p className="text-zinc-600 dark:text-zinc-400">Move the arm to the middle of its range (LeRobot&apos;s rest pose: every joint half-way). Watch the bars: every joint should sit near the middle mark before you set it.</p>
              <div className="flex flex-wrap gap-2">
                {watch.isRunning ? <Button size="sm" variant="secondary" onClick={watch.stop}>Stop watching</Button> : <Button size="sm" variant="secondary" onClick={() => watch.start({ ...bus, hz: 30, durationMs: 120_000 }, 130)}>Watch the joints</Button>}
                <Button size="sm" disabled={home.isRunning || watch.isRunning} onClick={() => home.start({ ...bus, ...(ROBOT_TYPES[robot.type].inverted.length ? { inverted: [...ROBOT_TYPES[robot.type].inverted] } : {}) }, 30)}>Set the middle</Button>
              </div>
              {watch.commandId && <MidRangeBars robot={robot} commandId={watch.commandId} />}
              <CommandLine command={watch.command} error={watch.error && watch.command?.status !== "cancelled" ? watch.error : null} />
              <CommandLine command={home.command} error={home.error} />
              {offsets && <Alert tone="green">Homing offsets written: {robot.motors.map((m) => `${m.name} ${offsets[m.name]}`).join(", ")}.</Alert>}
            </section>
            <section className="space-y-2" data-field="range">
              <h3 className="font-medium">b. Range of motion</h3>
              <p className="text-zinc-600 dark:text-zinc-400">Press Record, then move every joint slowly from one end of its range to the other (the gripper fully open and closed). {ROBOT_TYPES[robot.type].fullTurn.join(" and ")} turn{ROBOT_TYPES[robot.type].fullTurn.length > 1 ? "" : "s"} all the way round and get the whole turn, as in LeRobot.</p>
              <div className="flex flex-wrap items-center gap-2">
                <label className="text-xs text-zinc-500">Seconds <input type="number" min={3} max={300} value={rangeSeconds} onChange={(e) => setRangeSeconds(Math.max(3, Math.min(300, Number(e.target.value) || 20)))} className="ml-1 h-8 w-16 rounded border border-zinc-300 px-2 dark:border-zinc-700 dark:bg-zinc-950" /></label>
                <Button size="sm" disabled={!offsets || range.isRunning} onClick={() => range.start({ ...bus, durationMs: rangeSeconds * 1000, hz: 50, fullTurn: [...ROBOT_TYPES[robot.type].fullTurn] }, rangeSeconds + 30)}>Record the range</Button>
                {!offsets && <span className="text-xs text-zinc-500">set the middle first</span>}
              </div>
              {range.commandId && <RangeBars robot={robot} commandId={range.commandId} final={ranges} />}
              <CommandLine command={range.command} error={range.error} />
            </section>
            <section className="space-y-2" data-field="save">
              <h3 className="font-medium">c. Save</h3>
              <Button size="sm" disabled={!calibration || apply.isPending} onClick={() => calibration && apply.mutate({ robotId: robot.id, calibration, source: "wizard", writeMotors: true })}>Save the calibration</Button>
              {apply.error && <Alert>{errorMessage(apply.error)}</Alert>}
              {write && isInFlight(write.status) && <p className="text-xs text-zinc-500">Writing it on {robot.agentName}…</p>}
              {write?.status === "succeeded" && <Alert tone="green" data-field="saved">Saved: LeRobot&apos;s file {String((write.result as { path?: string } | null)?.path ?? "")} on {robot.agentName}, and the offsets and limits in the motors.</Alert>}
              {write && (write.status === "failed" || write.status === "cancelled") && <Alert>Kept in the portal, but not written on {robot.agentName}: {write.error}</Alert>}
            </section>
          </>
        )}
      </CardBody>
    </Card>
  );
}

function MidRangeBars({ robot, commandId }: { robot: Robot; commandId: string }) {
  return (
    <LiveJoints commandId={commandId}>
      {({ latest }) => {
        if (!latest) return <p className="text-xs text-zinc-500">Waiting for the first reading…</p>;
        const far = robot.motors.filter((_, i) => Math.abs((latest.raw[i] ?? MID) - MID) > NEAR_MID);
        return (
          <div className="space-y-2">
            <JointBars names={robot.motors.map((m) => m.name)} values={latest.raw} min={0} max={4095} marks={[MID]} format={(v) => String(v)} testId="mid-bars" warn={(i) => Math.abs((latest.raw[i] ?? MID) - MID) > NEAR_MID} />
            {far.length ? <Alert tone="amber" data-field="far">{far.map((m) => m.name).join(", ")} {far.length > 1 ? "are" : "is"} far from the middle: move {far.length > 1 ? "them" : "it"} towards the mark before setting the middle.</Alert> : <p className="text-xs text-emerald-600" data-field="near">Every joint is near the middle.</p>}
          </div>
        );
      }}
    </LiveJoints>
  );
}

function RangeBars({ robot, commandId, final }: { robot: Robot; commandId: string; final: Record<string, { min: number; max: number }> | null }) {
  return (
    <LiveJoints commandId={commandId}>
      {({ latest, extremes }) => {
        const names = robot.motors.map((m) => m.name);
        const min = final ? names.map((n) => final[n]?.min ?? 0) : (extremes?.min ?? null);
        const max = final ? names.map((n) => final[n]?.max ?? 0) : (extremes?.max ?? null);
        if (!min || !max) return <p className="text-xs text-zinc-500">Waiting for the first reading…</p>;
        return (
          <table className="w-full text-left text-xs" data-field="ranges">
            <thead className="text-zinc-500"><tr><th className="py-1">Joint</th><th className="w-1/2">Range seen</th><th>Min</th><th>Max</th><th>Now</th></tr></thead>
            <tbody>
              {names.map((n, i) => (
                <tr key={n} data-joint={n} className="border-t border-zinc-100 dark:border-zinc-800">
                  <td className="py-1 font-mono">{n}</td>
                  <td><div className="relative h-2 rounded bg-zinc-200 dark:bg-zinc-800"><div className="absolute h-2 rounded bg-brand-500" style={{ left: `${(min[i]! / 4095) * 100}%`, width: `${(Math.max(0, max[i]! - min[i]!) / 4095) * 100}%` }} /></div></td>
                  <td data-field="min">{min[i]}</td>
                  <td data-field="max">{max[i]}</td>
                  <td>{latest?.raw[i] ?? "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        );
      }}
    </LiveJoints>
  );
}

/** 5. Live check: the joints in LeRobot's units, as a policy will see them. */
function LiveStep({ robot }: { robot: Robot }) {
  const { can } = useRole();
  const watch = useAgentCommand(robot.agentId, "joints.stream");
  // The twin is the SO-101's URDF; the SO-100 has the same joints and nearly the same shape.
  const hasTwin = robot.type.startsWith("so10");
  const [isTwinShown, setTwinShown] = useState(false);
  return (
    <Card data-step="live">
      <CardHeader title="5. Live check" description="Move the arm: the joints as LeRobot reports them (−100..100 across each joint's range, the gripper 0..100)." />
      <CardBody className="space-y-3 text-sm">
        {!robot.calibration && <p className="text-zinc-500">Calibrate first: live joints are shown in LeRobot&apos;s units, which come from the calibration.</p>}
        {robot.calibration && robot.port && can("viewer") && (
          watch.isRunning ? <Button size="sm" variant="secondary" onClick={watch.stop}>Stop</Button> : <Button size="sm" variant="secondary" disabled={!can("operator")} onClick={() => watch.start({ port: robot.port, protocol: robot.protocol, motors: robot.motors, calibration: robot.calibration!.calibration, hz: 60, durationMs: 600_000 }, 610)}>Show live joints</Button>
        )}
        <CommandLine command={watch.command} error={watch.error && watch.command?.status !== "cancelled" ? watch.error : null} />
        {hasTwin && (
          <label className="flex items-center gap-2 text-xs">
            <input type="checkbox" checked={isTwinShown} onChange={(e) => setTwinShown(e.target.checked)} /> Show the 3D twin
          </label>
        )}
        {watch.commandId && (
          <LiveJoints commandId={watch.commandId} chart names={robot.motors.map((m) => m.name)}>
            {({ latest }) =>
              latest?.values ? (
                <div className="space-y-3">
                  <JointBars names={robot.motors.map((m) => m.name)} values={latest.values.map((v) => v ?? 0)} min={-100} max={100} marks={[0]} format={(v) => v.toFixed(1)} testId="live-bars" />
                  {hasTwin && isTwinShown && <SceneCanvas twinPose={twinPose(robot.motors.map((m) => m.name), latest.values, { calibration: robot.calibration?.calibration, protocol: robot.protocol })} />}
                </div>
              ) : (
                <p className="text-xs text-zinc-500">Waiting for the first reading…</p>
              )
            }
          </LiveJoints>
        )}
      </CardBody>
    </Card>
  );
}

/** Every calibration the arm has had; export, import, and a drift check against the motors. */
function HistoryStep({ robot }: { robot: Robot }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { can } = useRole();
  const history = useQuery(trpc.hardware.calibrations.queryOptions({ robotId: robot.id }));
  const refresh = () => {
    void queryClient.invalidateQueries({ queryKey: trpc.hardware.calibrations.queryKey({ robotId: robot.id }) });
    void queryClient.invalidateQueries({ queryKey: trpc.hardware.robot.queryKey({ robotId: robot.id }) });
  };
  const importCal = useMutation(trpc.hardware.importCalibration.mutationOptions({ onSuccess: refresh }));
  const drift = useAgentCommand(robot.agentId, "calibration.read");
  const [text, setText] = useState("");
  const current = robot.calibration;
  const fileKind = robot.role === "leader" ? "teleoperators" : "robots";
  return (
    <Card data-step="history">
      <CardHeader title="Calibration history and drift" description={`LeRobot reads this arm's calibration from calibration/${fileKind}/${robot.type}/${robot.name}.json on ${robot.agentName}.`} />
      <CardBody className="space-y-4 text-sm">
        {history.data?.length === 0 && <p className="text-zinc-500">No calibration yet.</p>}
        {history.data && history.data.length > 0 && (
          <ul className="divide-y divide-zinc-100 dark:divide-zinc-800" data-field="history">
            {history.data.map((c, i) => (
              <li key={c.id} className="flex flex-wrap items-center gap-3 py-1.5">
                <Badge tone={i === 0 ? "green" : "neutral"}>{i === 0 ? "current" : c.source}</Badge>
                <span className="text-xs">{c.source} by {c.createdBy} · <RelativeTime date={c.createdAt} />{c.note ? ` · ${c.note}` : ""}</span>
                <a className="ml-auto text-xs text-brand-600 hover:underline" href={`/api/robots/${robot.id}/calibration?calibrationId=${c.id}`} download>Download LeRobot file</a>
              </li>
            ))}
          </ul>
        )}
        {can("operator") && robot.port && current && (
          <div className="space-y-2">
            <Button size="sm" variant="secondary" disabled={drift.isRunning} onClick={() => drift.start({ file: { kind: fileKind, type: robot.type, id: robot.name }, port: robot.port, protocol: robot.protocol })}>Check for drift</Button>
            <CommandLine command={drift.command} error={drift.error} />
            {drift.result && <DriftReport robot={robot} result={drift.result} current={current.calibration} />}
          </div>
        )}
        {can("operator") && (
          <form className="space-y-2" onSubmit={(e) => { e.preventDefault(); importCal.mutate({ robotId: robot.id, text }); }}>
            <label className="block text-sm font-medium" htmlFor="calibration-import">Import a LeRobot calibration file</label>
            <input type="file" accept=".json,application/json" aria-label="Calibration file" className="text-xs" onChange={async (e) => setText((await e.target.files?.[0]?.text()) ?? "")} />
            <textarea id="calibration-import" value={text} onChange={(e) => setText(e.target.value)} rows={4} placeholder='{"shoulder_pan": {"id": 1, "drive_mode": 0, …}}' className="w-full rounded-md border border-zinc-300 p-2 font-mono text-xs dark:border-zinc-700 dark:bg-zinc-950" />
            <Button size="sm" variant="secondary" type="submit" disabled={!text || importCal.isPending}>Import</Button>
            {importCal.error && <Alert>{errorMessage(importCal.error)}</Alert>}
            {importCal.isSuccess && <p className="text-xs text-emerald-600">Imported as the current calibration (not yet written to the arm: save it from the calibration step, or run LeRobot with it).</p>}
          </form>
        )}
      </CardBody>
    </Card>
  );
}

function DriftReport({ robot, result, current }: { robot: Robot; result: CommandResult<"calibration.read">; current: Calibration }) {
  // Both through the database, which does not keep key order: compared in motor order.
  const fileDiffers = result.calibration && JSON.stringify(inMotorOrder(result.calibration)) !== JSON.stringify(inMotorOrder(current));
  return (
    <div data-field="drift" className="space-y-2">
      {!result.calibration && <Alert tone="amber">There is no calibration file at {result.path} on {robot.agentName}: save the calibration to write it.</Alert>}
      {fileDiffers && <Alert tone="amber">The file at {result.path} differs from the portal&apos;s current calibration (someone calibrated with LeRobot directly?): import it or save the portal&apos;s again.</Alert>}
      {result.drift && result.drift.length === 0 && <Alert tone="green">The motors hold what the file says: no drift.</Alert>}
      {result.drift && result.drift.length > 0 && (
        <Alert tone="amber" title="The motors disagree with the file">
          <ul>{result.drift.map((d) => <li key={`${d.motor}-${d.field}`}>{d.motor} {d.field}: file {d.file}, motor {d.motorValue ?? "no answer"}</li>)}</ul>
        </Alert>
      )}
    </div>
  );
}
