"use client";

import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState } from "react";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { PageHeader } from "@/components/ui/page-header";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { ExternalScoringForm, ExternalScorings } from "@/components/evaluation/external-scoring";
import { ImportForm } from "./import-form";

/** What a deletion just did, from the page's address (?deleted=<repo id>&left=<n>). */
function DeletedNotice({ repoId, left }: { repoId: string; left: number }) {
  const router = useRouter();
  return (
    <Alert tone="green" className="mb-4" title={`Deleted ${repoId}`}>
      <div className="flex flex-wrap items-center justify-between gap-2">
        <span>
          Its episodes, its folder and its raw episodes are gone.
          {left > 0 && ` ${left} of its folders ${left === 1 ? "is" : "are"} a link out of Gantry's own folders and ${left === 1 ? "was" : "were"} left in place; the audit log names ${left === 1 ? "it" : "them"}.`}
        </span>
        <Button size="sm" variant="ghost" onClick={() => router.replace("/datasets")}>Dismiss</Button>
      </div>
    </Alert>
  );
}

export function DatasetsPage({ deleted }: { deleted?: { repoId: string; left: number } }) {
  const trpc = useTRPC();
  const router = useRouter();
  const { can } = useRole();
  const datasets = useQuery({ ...trpc.datasets.list.queryOptions(), refetchInterval: (q) => (q.state.data?.some((d) => d.episodes.encoding > 0) ? 3000 : false) });
  const [isImportOpen, setImportOpen] = useState(false);
  const [isScoreOpen, setScoreOpen] = useState(false);

  return (
    <>
      <PageHeader
        title="Datasets"
        description="Episodes recorded at the edge, encoded here and kept as LeRobot v3.0 datasets. Import existing ones, export any as .tar.gz."
        actions={
          can("operator") && (
            <>
              <Button variant="ghost" onClick={() => setScoreOpen((v) => !v)} aria-expanded={isScoreOpen}>Score a dataset that is not in Gantry</Button>
              <Button onClick={() => setImportOpen((v) => !v)} aria-expanded={isImportOpen}>Import dataset</Button>
            </>
          )
        }
      />
      {isScoreOpen && (
        <Card className="mb-6">
          <CardHeader title="Score a dataset that is not in Gantry" description="A LeRobot v2.0, v2.1 or v3.0 dataset in a folder on the server, or on the hub, scored on the DataBench metrics where it is; nothing is imported." />
          <CardBody>
            <ExternalScoringForm onStarted={() => setScoreOpen(false)} />
          </CardBody>
        </Card>
      )}
      <ExternalScorings />
      {isImportOpen && (
        <Card className="mb-6">
          <CardHeader title="Import a LeRobot dataset" description="v2.0, v2.1 and v3.0 datasets are copied in and rewritten in v3.0's layout." />
          <CardBody>
            <ImportForm onDone={(id) => router.push(`/datasets/${id}`)} />
          </CardBody>
        </Card>
      )}
      {deleted && <DeletedNotice repoId={deleted.repoId} left={deleted.left} />}
      {datasets.error && <Alert className="mb-4">{errorMessage(datasets.error)}</Alert>}
      <Card>
        {datasets.data?.length === 0 && (
          <p className="px-5 py-10 text-center text-sm text-zinc-500">No datasets yet. Upload episodes with <code>gantry-agent upload</code>, or import a dataset.</p>
        )}
        <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
          {datasets.data?.map((d) => (
            <li key={d.id} data-dataset={d.repoId} className="flex flex-wrap items-center gap-4 px-5 py-4">
              <div className="min-w-0 flex-1">
                <Link href={`/datasets/${d.id}`} className="font-medium text-brand-600 hover:underline dark:text-brand-500">{d.repoId}</Link>
                <p className="text-sm text-zinc-500">
                  {d.cameras.length ? d.cameras.join(", ") : "no cameras"}
                  {d.fps ? ` · ${d.fps} fps` : ""}
                  {d.robotType ? ` · ${d.robotType}` : ""}
                </p>
              </div>
              {d.importStatus === "failed" ? <Badge tone="red">import failed</Badge> : d.importStatus === "importing" ? <Badge tone="blue">importing</Badge> : d.source === "import" && <Badge>imported {d.importedVersion}</Badge>}
              {d.missingVideos.length > 0 && <Badge tone="amber">videos missing</Badge>}
              {d.episodesWithoutVideo.length > 0 && <Badge tone="amber">{d.episodesWithoutVideo.length} episode{d.episodesWithoutVideo.length === 1 ? "" : "s"} without video</Badge>}
              <span className="text-sm text-zinc-500">{d.episodes.ready} episode{d.episodes.ready === 1 ? "" : "s"} · {d.totalFrames} frames</span>
              {d.episodes.encoding > 0 && <Badge tone="blue">{d.episodes.encoding} encoding</Badge>}
              {d.episodes.failed > 0 && <Badge tone="red">{d.episodes.failed} failed</Badge>}
              <span className="text-sm text-zinc-500">created <RelativeTime date={d.createdAt} /></span>
            </li>
          ))}
        </ul>
      </Card>
    </>
  );
}
