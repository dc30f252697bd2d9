"use client";

import { Card, CardBody, CardHeader } from "@/components/ui/card";
import type { Report } from "@/server/evaluation/evaluation.schemas";

/** A few frames of each camera as the h metric saw them, each with its sharpness and brightness. */
export function SampleFrames({ frames, explain }: { frames: Report["sampleFrames"]; explain: string | null }) {
  if (!frames.length) return null;
  const cameras = [...new Set(frames.map((f) => f.camera))];
  return (
    <Card data-testid="sample-frames">
      <CardHeader title="Sample frames" description={explain ?? undefined} />
      <CardBody className="space-y-4">
        {cameras.map((camera) => (
          <section key={camera} aria-label={`camera ${camera}`}>
            <h3 className="mb-2 text-sm font-medium">Camera {camera}</h3>
            <ul className="flex flex-wrap gap-3">
              {frames.filter((f) => f.camera === camera).map((f) => (
                <li key={`${f.episode}-${f.frame}`} className="text-xs text-zinc-500">
                  {/* A data URL kept in the report: a plain img, as next/image has nothing to optimise in it. */}
                  <img src={f.dataUrl} width={f.width} height={f.height} alt={`camera ${camera}, episode ${f.episode}, frame ${f.frame}`} className="rounded border border-zinc-200 dark:border-zinc-800" />
                  <p className="mt-1">episode {f.episode}, frame {f.frame}</p>
                  <p className="tabular-nums">sharpness {f.laplacianVar.toFixed(0)} · brightness {f.luma.toFixed(0)}/255</p>
                </li>
              ))}
            </ul>
          </section>
        ))}
      </CardBody>
    </Card>
  );
}
