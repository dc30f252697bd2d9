"use client";

import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import dynamic from "next/dynamic";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { episodeTwinPoses, twinJointOf } from "@/server/captures/twin-pose";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { PageHeader } from "@/components/ui/page-header";
import { errorMessage, useTRPC } from "@/components/trpc";
import { EpisodeStatus, formatSeconds } from "./episode-status";
import { JointPlot } from "./joint-plot";

// WebGL only in the browser, and only when asked for.
const SceneCanvas = dynamic(() => import("@/components/captures/scene-canvas"), { ssr: false, loading: () => <p className="text-xs text-zinc-500">Loading the 3D view…</p> });

/**
 * Every camera of an episode playing in sync, with charts of its joints' state and action. The first
 * video is the clock; the others follow it within a frame. Without videos (an import that
 * lacked them) a timer is the clock, so the plots still play and scrub.
 */
export function EpisodeView({ datasetId, episodeId }: { datasetId: string; episodeId: string }) {
  const trpc = useTRPC();
  const episode = useQuery(trpc.datasets.episode.queryOptions({ episodeId }));
  const videoRefs = useRef<(HTMLVideoElement | null)[]>([]);
  const [time, setTime] = useState(0);
  const [isPlaying, setPlaying] = useState(false);
  const timerStart = useRef<{ wall: number; t: number } | null>(null);

  const data = episode.data;
  const [isTwinShown, setTwinShown] = useState(false);
  // The twin's pose for every frame, worked out once per episode.
  const twin = useMemo(() => {
    if (!data?.frames) return null;
    const { poses, units } = episodeTwinPoses(data.jointNames.state, data.frames.state);
    return { poses, units, count: data.jointNames.state.filter((c) => twinJointOf(c)).length };
  }, [data]);
  const fps = data?.dataset.fps ?? 30;
  const frameCount = data?.frames?.timestamp.length ?? 0;
  const duration = frameCount / fps;
  const playable = data?.videos.filter((v) => v.url) ?? [];
  const videos = () => videoRefs.current.filter((v): v is HTMLVideoElement => Boolean(v));

  const seek = useCallback(
    (t: number) => {
      const clamped = Math.min(Math.max(0, t), Math.max(0, duration - 1 / fps / 2));
      for (const v of videoRefs.current) if (v) v.currentTime = clamped;
      if (timerStart.current) timerStart.current = { wall: performance.now(), t: clamped };
      setTime(clamped);
    },
    [duration, fps],
  );

  // The clock: follows the first video (or the timer) and keeps the others within a frame.
  useEffect(() => {
    if (!isPlaying) return;
    let raf = 0;
    const tick = () => {
      const [master, ...rest] = videos();
      let t: number;
      if (master) {
        t = master.currentTime;
        for (const v of rest) if (Math.abs(v.currentTime - t) > 1.5 / fps) v.currentTime = t;
        if (master.ended) setPlaying(false);
      } else {
        const start = (timerStart.current ??= { wall: performance.now(), t: time });
        t = start.t + (performance.now() - start.wall) / 1000;
        if (t >= duration) {
          t = duration;
          setPlaying(false);
        }
      }
      setTime(t);
      raf = requestAnimationFrame(tick);
    };
    raf = requestAnimationFrame(tick);
    return () => cancelAnimationFrame(raf);
    // `time` is read once, when playing starts; the clock owns it from then on.
  }, [isPlaying, fps, duration]);

  const play = async () => {
    if (time >= duration - 1 / fps) seek(0);
    const all = videos();
    timerStart.current = all.length ? null : { wall: performance.now(), t: time >= duration - 1 / fps ? 0 : time };
    await Promise.all(all.map((v) => v.play().catch(() => {})));
    setPlaying(true);
  };
  const pause = () => {
    const all = videos();
    const [master, ...rest] = all;
    for (const v of all) v.pause();
    // Paused, every camera shows the first one's instant (playing, they may drift by up to the clock's slack).
    if (master) {
      for (const v of rest) v.currentTime = master.currentTime;
      setTime(master.currentTime);
    }
    timerStart.current = null;
    setPlaying(false);
  };

  if (episode.error) return <Alert>{errorMessage(episode.error)}</Alert>;
  if (!data) return <p className="text-sm text-zinc-500">Loading…</p>;
  const e = data.episode;
  const frame = Math.min(frameCount - 1, Math.floor(time * fps + 1e-6));

  return (
    <>
      <PageHeader
        title={`${data.dataset.repoId} · episode ${e.datasetIndex !== null ? `#${e.datasetIndex}` : `recorded ${e.number}`}`}
        description={<>{e.task || "no task"} · {e.length ?? "—"} frames · {formatSeconds(e.durationS)} · <Link href={`/datasets/${datasetId}`} className="text-brand-600 hover:underline dark:text-brand-500">all episodes</Link></>}
        actions={<EpisodeStatus status={e.status} progress={e.jobProgress} isDeleted={Boolean(e.deletedAt)} />}
      />
      {e.status === "failed" && e.error && <Alert className="mb-4" title="Encoding failed">{e.error}</Alert>}
      {e.missingVideos.length > 0 && e.status === "ready" && (
        <Alert tone="amber" className="mb-4" title="This episode has no video">
          {e.missingVideos.join(", ")}: recorded episode {e.number} came without {e.missingVideos.length === 1 ? "this camera's video" : "these cameras' videos"}, which the other episodes have. It is kept with its joints, which still play and scrub, but left out of the dataset&apos;s files (export and training).
        </Alert>
      )}
      {data.videos.some((v) => !v.url && !e.missingVideos.includes(v.camera)) && e.status === "ready" && (
        <Alert tone="amber" className="mb-4" title="Videos missing">
          {data.videos.filter((v) => !v.url && !e.missingVideos.includes(v.camera)).map((v) => v.camera).join(", ")}: this dataset came without {data.videos.every((v) => !v.url) ? "its" : "these"} videos. The joints below still play and scrub.
        </Alert>
      )}
      {!data.frames && e.status !== "failed" && <Alert tone="blue" className="mb-4">This episode is still being encoded; it appears here once it is in the dataset.</Alert>}

      {data.frames && (
        <>
          {playable.length > 0 && (
            <div className={`mb-4 grid gap-4 ${playable.length > 1 ? "md:grid-cols-2" : ""}`}>
              {playable.map((v, i) => (
                <Card key={v.camera}>
                  <video
                    ref={(el) => void (videoRefs.current[i] = el)}
                    src={v.url!}
                    data-testid="episode-video"
                    data-camera={v.camera}
                    muted
                    playsInline
                    preload="auto"
                    className="aspect-video w-full rounded-t-lg bg-black object-contain"
                    onLoadedMetadata={(ev) => (ev.currentTarget.currentTime = time)}
                  />
                  <p className="px-4 py-2 text-sm font-medium">{v.camera}{v.width ? <span className="ml-2 text-xs font-normal text-zinc-500">{v.width}×{v.height}</span> : null}</p>
                </Card>
              ))}
            </div>
          )}
          <Card className="mb-4">
            <CardBody className="flex flex-wrap items-center gap-4">
              {isPlaying ? <Button variant="secondary" onClick={pause}>Pause</Button> : <Button onClick={() => void play()}>Play</Button>}
              <input
                type="range"
                aria-label="Position in the episode"
                min={0}
                max={Math.max(0, frameCount - 1)}
                value={Math.max(0, frame)}
                onChange={(ev) => seek(Number(ev.currentTarget.value) / fps)}
                className="min-w-48 flex-1"
              />
              <span className="text-sm tabular-nums text-zinc-500" data-testid="episode-clock">
                frame {Math.max(0, frame)} / {frameCount} · {time.toFixed(2)} s
              </span>
            </CardBody>
          </Card>
          {twin && twin.count > 0 && (
            <Card>
              <CardHeader
                title="3D twin"
                description={`The SO-101 replaying the recorded joint states, in step with the videos (${twin.units === "degrees" ? "recorded in degrees" : "recorded in −100..100: spread across the arm's joint limits, close but not exact without its calibration"}).`}
                actions={<label className="flex items-center gap-2 text-sm"><input type="checkbox" checked={isTwinShown} onChange={(e) => setTwinShown(e.target.checked)} /> Show</label>}
              />
              {isTwinShown && (
                <CardBody>
                  <SceneCanvas twinPose={twin.poses[Math.min(twin.poses.length - 1, Math.max(0, frame))] ?? {}} />
                </CardBody>
              )}
            </Card>
          )}
          <Card>
            <CardHeader
              title="Joints"
              description="Values as recorded, at the cursor in each legend. Click a chart to seek there; drag across it to zoom in, double-click to zoom out."
            />
            <CardBody>
              <JointPlot frames={data.frames} names={data.jointNames} position={time} onSeek={seek} />
            </CardBody>
          </Card>
        </>
      )}
    </>
  );
}
