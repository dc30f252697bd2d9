"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import dynamic from "next/dynamic";
import Link from "next/link";
import { useState } from "react";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { PageHeader } from "@/components/ui/page-header";
import { ProgressBar } from "@/components/ui/progress-bar";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { TWIN_JOINTS, TWIN_LIMITS, twinAngles } from "@/server/captures/twin-pose";
import { isInFlight } from "@/server/hardware/hardware.schemas";
import { useJointSamples } from "@/components/hardware/use-agent-command";
import { TrainerBadge } from "./captures-page";

// WebGL only in the browser.
const SceneCanvas = dynamic(() => import("./scene-canvas"), { ssr: false, loading: () => <div className="h-96 w-full rounded-md bg-zinc-900" /> });

/** A capture: the scene as the trainer builds it (newest snapshot, or one picked on the timeline), the arm's twin, and the controls. */
export function CaptureSessionPage({ sessionId }: { sessionId: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { can } = useRole();
  const session = useQuery({ ...trpc.captures.get.queryOptions({ sessionId }), refetchInterval: 1_000 });
  const snapshots = useQuery({ ...trpc.captures.snapshots.queryOptions({ sessionId, limit: 100 }), refetchInterval: 2_000 });
  const refresh = () => void queryClient.invalidateQueries({ queryKey: trpc.captures.get.queryKey({ sessionId }) });
  const stop = useMutation(trpc.captures.stop.mutationOptions({ onSuccess: refresh }));
  const start = useMutation(trpc.captures.start.mutationOptions({ onSuccess: refresh }));
  const reset = useMutation(trpc.captures.reset.mutationOptions({ onSuccess: refresh }));
  // The timeline: null follows the newest snapshot; otherwise the one picked.
  const [picked, setPicked] = useState<string | null>(null);
  const [isTwinShown, setTwinShown] = useState(true);
  const [isFrustumShown, setFrustumShown] = useState(true);
  const [sliders, setSliders] = useState<Record<string, number>>({});
  // Posted poses, pushed as they come (the session's own read is only once a second).
  const [pushed, setPushed] = useState<{ t: number; angles: number[] } | null>(null);
  const jointsFeed = useSubscription(trpc.captures.onJoints.subscriptionOptions({ sessionId }, { onData: (state) => state && setPushed(state) }));
  // The bound arm's own live joints, while the capture follows it (LeRobot's units, converted with its calibration).
  const robotId = session.data?.robotId ?? null;
  const robot = useQuery({ ...trpc.hardware.robot.queryOptions({ robotId: robotId ?? "00000000-0000-0000-0000-000000000000" }), enabled: Boolean(robotId) });
  const live = session.data?.live ?? null;
  const isFollowing = Boolean(live && isInFlight(live.status));
  const armSamples = useJointSamples(isFollowing ? live!.commandId : null, 2_000);
  const startLive = useMutation(trpc.captures.startLive.mutationOptions({ onSuccess: refresh }));
  const stopLive = useMutation(trpc.captures.stopLive.mutationOptions({ onSuccess: refresh }));

  if (session.error) return <Alert>{errorMessage(session.error)}</Alert>;
  const s = session.data;
  if (!s) return <p className="text-sm text-zinc-500">Loading…</p>;
  // Oldest first for the slider.
  const timeline = [...(snapshots.data ?? [])].reverse();
  const shown = (picked ? timeline.find((x) => x.id === picked) : null) ?? s.latestSnapshot;
  const pickedIndex = shown ? timeline.findIndex((x) => x.id === shown.id) : -1;
  // The arm's live readings drive the twin while the capture follows it; else posted joint angles
  // (radians, the twin's joint order); without either, the sliders do.
  const armAngles = isFollowing && armSamples.latest?.values && robot.data ? twinAngles(robot.data.motors.map((m) => m.name), armSamples.latest.values, { calibration: robot.data.calibration?.calibration, protocol: robot.data.protocol }) : null;
  const armJoints = armAngles ? { t: armSamples.latest!.t, angles: armAngles } : null;
  const posted = pushed && (!s.latestJoints || pushed.t >= s.latestJoints.t) ? pushed : s.latestJoints;
  const joints = armJoints ?? posted;
  const hasLiveJoints = Boolean(joints);
  const pose = joints ? Object.fromEntries(TWIN_JOINTS.map((j, i) => [j, joints.angles[i] ?? 0])) : Object.fromEntries(TWIN_JOINTS.map((j) => [j, sliders[j] ?? 0]));
  const mutationError = stop.error ?? start.error ?? reset.error ?? startLive.error ?? stopLive.error;

  return (
    <>
      <PageHeader
        title={s.name}
        description={
          <span className="flex flex-wrap items-center gap-2">
            <Badge tone={s.status === "active" ? "green" : "neutral"}>{s.status}</Badge>
            <TrainerBadge state={s.trainer.state} name={s.trainer.name} />
            <span data-field="frames">{s.frameCount} frames</span> · <span>{s.chunkCount} chunks</span> · <span data-field="snapshot-count">{s.snapshotCount} snapshots</span>
            {s.robotName && <> · arm <Link className="text-brand-600 hover:underline" href={`/robots/${s.robotId}`}>{s.robotName}</Link></>}
          </span>
        }
        actions={
          can("operator") && (
            <div className="flex gap-2">
              {s.status === "active" ? <Button variant="secondary" disabled={stop.isPending} onClick={() => stop.mutate({ sessionId })}>Stop</Button> : <Button variant="secondary" disabled={start.isPending} onClick={() => start.mutate({ sessionId })}>Start again</Button>}
              <Button variant="secondary" disabled={reset.isPending} onClick={() => confirm("Reset this capture? Its frames and snapshots are deleted; the trainer starts over.") && reset.mutate({ sessionId })}>Reset</Button>
            </div>
          )
        }
      />
      {mutationError && <Alert className="mb-4">{errorMessage(mutationError)}</Alert>}
      {jointsFeed.status === "error" && jointsFeed.error && <Alert className="mb-4">{jointsFeed.error.message}</Alert>}
      {s.trainer.state === "silent" && <Alert tone="amber" className="mb-4">The trainer {s.trainer.name} has gone silent (last heard <RelativeTime date={s.trainer.lastSeenAt ?? s.createdAt} />): another trainer can claim this capture.</Alert>}
      <div className="grid gap-6 lg:grid-cols-[1fr_18rem]">
        <Card>
          <CardHeader
            title="Scene"
            description={shown ? `Iteration ${shown.iteration} · ${shown.splats.toLocaleString()} splats · SH degree ${shown.shDegree} · ${(shown.spzBytes / 1e6).toFixed(1)} MB as SPZ (${(shown.sourceBytes / 1e6).toFixed(1)} MB as sent)` : "No snapshot yet: the trainer pushes one every few frames."}
            actions={
              <div className="flex items-center gap-4 text-sm">
                {s.camera && <label className="flex items-center gap-2"><input type="checkbox" checked={isFrustumShown} onChange={(e) => setFrustumShown(e.target.checked)} /> Camera</label>}
                <label className="flex items-center gap-2"><input type="checkbox" checked={isTwinShown} onChange={(e) => setTwinShown(e.target.checked)} /> Twin</label>
              </div>
            }
          />
          <CardBody className="space-y-3">
            <SceneCanvas snapshotUrl={shown?.spzUrl ?? null} twinPose={isTwinShown ? pose : null} camera={isFrustumShown ? s.camera : null} />
            {timeline.length > 1 && (
              <div className="flex items-center gap-3 text-xs">
                <label htmlFor="timeline" className="text-zinc-500">Snapshot</label>
                <input id="timeline" aria-label="Snapshot timeline" type="range" min={0} max={timeline.length - 1} value={Math.max(0, pickedIndex)} onChange={(e) => setPicked(timeline[Number(e.target.value)]!.id)} className="min-w-48 flex-1" />
                <span className="tabular-nums">{pickedIndex + 1} / {timeline.length}</span>
                {picked && <Button size="sm" variant="secondary" onClick={() => setPicked(null)}>Follow the newest</Button>}
              </div>
            )}
          </CardBody>
        </Card>
        <div className="space-y-6">
          <Card>
            <CardHeader title="Trainer" />
            <CardBody className="space-y-2 text-sm">
              {s.trainer.state === "none" ? (
                <p className="text-zinc-500">No trainer has claimed this capture. Run one on a GPU host with an API token (<Link href="/docs/capture" className="underline">the capture guide</Link> says how).</p>
              ) : (
                <dl className="grid grid-cols-[max-content_1fr] gap-x-3 gap-y-1">
                  <dt className="text-zinc-500">Name</dt><dd>{s.trainer.name}</dd>
                  <dt className="text-zinc-500">Iteration</dt><dd data-field="iteration">{s.trainer.iteration ?? "—"}</dd>
                  <dt className="text-zinc-500">Gaussians</dt><dd>{s.trainer.gaussians?.toLocaleString() ?? "—"}</dd>
                  <dt className="text-zinc-500">Last heard</dt><dd>{s.trainer.lastSeenAt ? <RelativeTime date={s.trainer.lastSeenAt} /> : "—"}</dd>
                </dl>
              )}
              {s.trainer.progress !== null && <ProgressBar value={s.trainer.progress} label="Training progress" />}
            </CardBody>
          </Card>
          <Card>
            <CardHeader title="Joints" description={armJoints ? `Live from ${s.robotName} (radians, through its calibration).` : isFollowing ? `Waiting for ${s.robotName}'s agent to read the joints…` : hasLiveJoints ? "As last posted (radians), as they come." : "Nothing posted yet: pose the twin by hand."} />
            <CardBody className="space-y-1.5 text-xs">
              {s.robotId && can("operator") && (
                <div className="mb-2 flex items-center gap-2" data-field="live">
                  {isFollowing ? (
                    <Button size="sm" variant="secondary" disabled={stopLive.isPending} onClick={() => stopLive.mutate({ sessionId })}>Stop following the arm</Button>
                  ) : (
                    <Button size="sm" variant="secondary" disabled={startLive.isPending || s.status !== "active"} onClick={() => startLive.mutate({ sessionId })}>Follow the arm live</Button>
                  )}
                  {isFollowing && <span data-field="live-state"><Badge tone={armJoints ? "green" : "neutral"}>{armJoints ? "live" : live!.status}</Badge></span>}
                </div>
              )}
              {TWIN_JOINTS.map((joint, i) => {
                const { lower, upper } = TWIN_LIMITS[joint]!;
                const value = pose[joint] ?? 0;
                return (
                  <label key={joint} className="grid grid-cols-[6.5rem_1fr_3rem] items-center gap-2" data-joint={joint}>
                    <span className="font-mono">{joint}</span>
                    <input type="range" aria-label={`${joint} angle`} min={lower} max={upper} step={0.01} value={value} disabled={hasLiveJoints} onChange={(e) => setSliders((v) => ({ ...v, [joint]: Number(e.target.value) }))} />
                    <span className="text-right tabular-nums" data-field="angle">{(joints ? joints.angles[i] ?? 0 : value).toFixed(2)}</span>
                  </label>
                );
              })}
            </CardBody>
          </Card>
        </div>
      </div>
    </>
  );
}
