"use client";

import { useMutation, useQuery } from "@tanstack/react-query";
import { useRouter } from "next/navigation";
import { Button } from "@/components/ui/button";
import { useRole } from "@/components/settings/use-role";
import Link from "next/link";
import { useMemo, useState } from "react";
import { Alert } from "@/components/ui/alert";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { PageHeader } from "@/components/ui/page-header";
import { LineChart } from "@/components/ui/line-chart";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { FLAG_WORDS, type Flag } from "@/server/evaluation/evaluation.schemas";
import { scoreText } from "./dataset-quality";
import { SampleFrames } from "./sample-frames";

const tone = (s: number | null) => (s === null ? "text-zinc-400" : s >= 0.75 ? "text-green-600" : s >= 0.5 ? "text-amber-600" : "text-red-600");

/** A scoring's report: scores with their sub-scores explained, per-episode findings, and plots. */
export function EvaluationReport({ evaluationId }: { evaluationId: string }) {
  const trpc = useTRPC();
  const q = useQuery({ ...trpc.evaluation.get.queryOptions({ evaluationId }), refetchInterval: (x) => (x.state.data && ["queued", "running"].includes(x.state.data.status) ? 1_000 : false) });
  const [flag, setFlag] = useState<Flag | "">("");
  const [sort, setSort] = useState<"index" | "findings">("index");
  const report = q.data?.report ?? null;
  const flagCounts = useMemo(() => {
    const counts = new Map<Flag, number>();
    for (const e of report?.episodes ?? []) for (const f of new Set(e.findings.map((x) => x.flag))) counts.set(f, (counts.get(f) ?? 0) + 1);
    return [...counts.entries()].sort((a, b) => b[1] - a[1]);
  }, [report]);
  if (q.error) return <Alert>{errorMessage(q.error)}</Alert>;
  if (!q.data) return <p className="text-sm text-zinc-500">Loading…</p>;
  const e = q.data;
  const episodes = (report?.episodes ?? []).filter((x) => !flag || x.findings.some((f) => f.flag === flag)).sort((a, b) => (sort === "index" ? a.index - b.index : b.findings.length - a.findings.length || a.index - b.index));
  return (
    <>
      <PageHeader
        title={`Quality of ${e.source.label}`}
        description={<>{e.dataset ? <Link href={`/datasets/${e.dataset.id}`} className="underline">{e.dataset.repoId}</Link> : <SourceText source={e.source} />} · scored <RelativeTime date={e.createdAt} />{e.isCurrentBuild ? "" : " · the dataset has changed since"}</>}
      />
      {["queued", "running"].includes(e.status) && <Alert tone="blue" className="mb-4">Scoring… {e.jobId && <Link href={`/jobs/${e.jobId}`} className="underline">follow the job</Link>}</Alert>}
      {e.status === "failed" && <Alert className="mb-4" title="The scoring failed">{e.error}</Alert>}
      {report && (
        <div className="space-y-6">
          <Card>
            <CardBody className="flex flex-wrap items-end gap-6">
              <div><p className="text-xs text-zinc-500">Overall</p><p className={`text-3xl font-semibold tabular-nums ${tone(report.overall)}`} data-testid="overall-score">{scoreText(report.overall)}</p></div>
              {report.metrics.map((m) => (
                <div key={m.code}><p className="text-xs text-zinc-500">{m.name} ({m.code})</p><p className={`text-xl font-semibold tabular-nums ${tone(m.score)}`}>{scoreText(m.score)}</p></div>
              ))}
              <p className="basis-full text-xs text-zinc-500">Joint units: {report.units.reason}.</p>
              {report.descriptor && (
                <p className="basis-full text-xs text-zinc-500" data-testid="descriptor-used">
                  Visual descriptors: {report.descriptorModel ? <>the organisation&apos;s image encoder <Link href={`/models/${report.descriptorModel.modelId}`} className="underline">{report.descriptorModel.modelName} version {report.descriptorModel.number}</Link></> : "made from the sampled frames alone (no model)"}.
                </p>
              )}
            </CardBody>
          </Card>
          <SampleFrames frames={report.sampleFrames} explain={report.sampleFramesExplain} />
          {e.dataset && <CompareEvaluations evaluationId={e.id} datasetId={e.dataset.id} derivedFrom={e.derivedFromEvaluationId} />}
          <div className="grid gap-6 lg:grid-cols-2">
            {report.metrics.map((m) => (
              <Card key={m.code}>
                <CardHeader title={`${m.name} — ${scoreText(m.score)}`} description={m.summary} />
                <CardBody>
                  <table className="w-full text-sm">
                    <tbody>
                      {m.subScores.map((s) => (
                        <tr key={s.key} className="border-t border-zinc-100 align-top dark:border-zinc-800">
                          <td className="py-1.5 pr-2"><p className="font-medium">{s.label}</p><p className="text-xs text-zinc-500">{s.explain}</p></td>
                          <td className="py-1.5 pr-2 text-right tabular-nums text-zinc-500">{s.value === null ? "" : `${s.value}${s.unit ? ` ${s.unit}` : ""}`}</td>
                          <td className={`py-1.5 text-right font-semibold tabular-nums ${tone(s.score)}`}>{scoreText(s.score)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                  {m.notes.map((n) => <p key={n} className="mt-2 text-xs text-zinc-500">{n}</p>)}
                </CardBody>
              </Card>
            ))}
          </div>
          <div className="grid gap-6 lg:grid-cols-2">
            {report.jointRanges.length > 0 && (
              <Card>
                <CardHeader title="Joint ranges against limits" description={`The lowest and highest value of each joint across the dataset, with the limits checked (${report.units.kind}).`} />
                <CardBody>
                  <LineChart
                    testId="joint-ranges-chart"
                    x={report.jointRanges.map((_, i) => i)}
                    xLabel="joint"
                    // One place per joint, named on the axis; no line joins two joints.
                    formatX={(i) => report.jointRanges[i]?.name ?? ""}
                    xPlaces
                    yLabels={["value"]}
                    series={[
                      { label: "lowest", values: report.jointRanges.map((j) => j.min), color: "#2563eb", points: true, width: 0 },
                      { label: "highest", values: report.jointRanges.map((j) => j.max), color: "#16a34a", points: true, width: 0 },
                      { label: "lower limit", values: report.jointRanges.map((j) => j.limitMin), color: "#dc2626", points: true, width: 0 },
                      { label: "upper limit", values: report.jointRanges.map((j) => j.limitMax), color: "#dc2626", points: true, width: 0 },
                    ]}
                  />
                </CardBody>
              </Card>
            )}
            <Card>
              <CardHeader title="Episode lengths" description="Frames per episode; outliers are flagged below." />
              <CardBody>
                <LineChart testId="episode-lengths-chart" x={report.episodes.map((x) => x.index)} xLabel="episode" yLabels={["frames"]} series={[{ label: "frames", values: report.episodes.map((x) => x.length), color: "#7c3aed", points: true }]} />
              </CardBody>
            </Card>
            {report.intervalHistogram.length > 0 && (
              <Card>
                <CardHeader title="Frame intervals" description="How many consecutive frames lie this many ms apart (one frame period is the peak a regular recording shows)." />
                <CardBody>
                  <LineChart testId="intervals-chart" x={report.intervalHistogram.map(([ms]) => ms)} xLabel="interval (ms)" yLabels={["frames"]} series={[{ label: "frames", values: report.intervalHistogram.map(([, n]) => n), color: "#0891b2", points: true }]} />
                </CardBody>
              </Card>
            )}
            {report.visualMap.length > 0 && (
              <Card>
                <CardHeader title="Episodes by what the cameras see" description={report.descriptor ?? "Episodes placed by their visual descriptors (two principal components)."} />
                <CardBody>
                  <VisualMap points={report.visualMap} />
                </CardBody>
              </Card>
            )}
          </div>
          {e.dataset && e.isCurrentBuild && report.episodes.some((x) => x.findings.length) && <ExcludeFlagged evaluationId={e.id} repoId={e.dataset.repoId} flagged={report.episodes.filter((x) => x.findings.length).length} />}
          <Card>
            <CardHeader
              title="Episodes"
              description={`${report.episodes.filter((x) => x.findings.length).length} of ${report.episodes.length} episodes have findings.`}
              actions={
                <>
                  <select aria-label="Show episodes with" value={flag} onChange={(ev) => setFlag(ev.target.value as Flag | "")} className="h-8 rounded-md border border-zinc-300 bg-white px-2 text-sm dark:border-zinc-700 dark:bg-zinc-950">
                    <option value="">every episode</option>
                    {flagCounts.map(([f, n]) => <option key={f} value={f}>{f} ({n})</option>)}
                  </select>
                  <select aria-label="Sort by" value={sort} onChange={(ev) => setSort(ev.target.value as "index" | "findings")} className="h-8 rounded-md border border-zinc-300 bg-white px-2 text-sm dark:border-zinc-700 dark:bg-zinc-950">
                    <option value="index">by number</option>
                    <option value="findings">most findings first</option>
                  </select>
                </>
              }
            />
            <div className="overflow-x-auto">
              <table className="w-full text-sm" data-testid="episode-findings">
                <thead className="text-left text-xs text-zinc-500"><tr><th className="px-5 py-2">Episode</th><th className="px-2 py-2">Frames</th><th className="px-2 py-2">Task</th><th className="px-5 py-2">Findings</th></tr></thead>
                <tbody>
                  {episodes.map((x) => (
                    <tr key={x.index} className="border-t border-zinc-100 align-top dark:border-zinc-800">
                      <td className="px-5 py-2 tabular-nums">{x.index}</td>
                      <td className="px-2 py-2 tabular-nums">{x.length}</td>
                      <td className="px-2 py-2">{x.task}</td>
                      <td className="px-5 py-2">
                        {x.findings.length === 0 ? <span className="text-zinc-400">none</span> : (
                          <ul className="space-y-0.5">
                            {x.findings.map((f, i) => <li key={i}><span className="font-medium">{f.flag}</span> <span className="text-zinc-500">— {FLAG_WORDS[f.flag]}: {f.detail}</span></li>)}
                          </ul>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </Card>
        </div>
      )}
    </>
  );
}

/** A dataset Gantry does not hold: where it is, and which version of it was scored. */
export function SourceText({ source }: { source: { kind: string; label: string; revision: string | null; version: string | null } }) {
  const version = source.version ? (source.kind === "hub" ? `commit ${source.version.slice(0, 12)}` : `files ${source.version.replace(/^files:/, "").slice(0, 12)}`) : null;
  return (
    <span data-testid="evaluation-source">
      {source.kind === "hub" ? `hub dataset ${source.label}@${source.revision ?? "main"}` : `folder ${source.label}`}
      {version ? ` (${version})` : ""} · not in Gantry
    </span>
  );
}

/** "Exclude flagged episodes": a new dataset without them (operators); nothing is deleted. */
function ExcludeFlagged({ evaluationId, repoId, flagged }: { evaluationId: string; repoId: string; flagged: number }) {
  const trpc = useTRPC();
  const router = useRouter();
  const { can } = useRole();
  const derive = useMutation(trpc.evaluation.excludeFlagged.mutationOptions({ onSuccess: ({ datasetId }) => router.push(`/datasets/${datasetId}`) }));
  if (!can("operator")) return null;
  return (
    <Card>
      <CardHeader title="Exclude flagged episodes" description={`A new dataset with the episodes of ${repoId} that have no finding (${flagged} flagged are left out). Nothing is deleted; the episodes' files are shared, not copied.`} />
      <CardBody>
        <form
          className="flex flex-wrap items-end gap-3"
          onSubmit={(ev) => {
            ev.preventDefault();
            derive.mutate({ evaluationId, repoId: String(new FormData(ev.currentTarget).get("repoId") ?? "").trim() });
          }}
        >
          <label className="text-sm">
            <span className="mb-1 block font-medium">New repo id</span>
            <input name="repoId" required defaultValue={`${repoId}-clean`} className="h-10 w-72 rounded-md border border-zinc-300 bg-white px-3 text-sm dark:border-zinc-700 dark:bg-zinc-950" />
          </label>
          <Button type="submit" disabled={derive.isPending}>{derive.isPending ? "Building…" : "Exclude flagged episodes"}</Button>
        </form>
        {derive.error && <Alert className="mt-3">{errorMessage(derive.error)}</Alert>}
      </CardBody>
    </Card>
  );
}

/** Two scorings side by side: this one and another of the same dataset, or of the dataset this one was derived from. */
function CompareEvaluations({ evaluationId, datasetId, derivedFrom }: { evaluationId: string; datasetId: string; derivedFrom: string | null }) {
  const trpc = useTRPC();
  const list = useQuery(trpc.evaluation.list.queryOptions({ datasetId }));
  const options = [...(derivedFrom ? [{ id: derivedFrom, label: "the dataset it was derived from (before excluding)" }] : []), ...(list.data ?? []).filter((x) => x.id !== evaluationId && x.status === "succeeded").map((x) => ({ id: x.id, label: `this dataset, ${new Date(x.createdAt).toLocaleString()}` }))];
  const [other, setOther] = useState<string>("");
  const chosen = other || derivedFrom || "";
  const mine = useQuery(trpc.evaluation.get.queryOptions({ evaluationId }));
  const theirs = useQuery({ ...trpc.evaluation.get.queryOptions({ evaluationId: chosen }), enabled: Boolean(chosen) });
  if (!options.length) return null;
  const a = mine.data?.report;
  const b = theirs.data?.report;
  const codes = [...new Set([...(a?.metrics ?? []), ...(b?.metrics ?? [])].map((m) => m.code))];
  const scoreOf = (r: typeof a, code: string) => r?.metrics.find((m) => m.code === code)?.score ?? null;
  const flagged = (r: typeof a) => r?.episodes.filter((x) => x.findings.length).length ?? 0;
  return (
    <Card data-testid="compare-evaluations">
      <CardHeader
        title="Compare"
        description="This scoring beside another: after excluding flagged episodes, or before and after recording more."
        actions={
          <select aria-label="Compare with" value={chosen} onChange={(ev) => setOther(ev.target.value)} className="h-8 rounded-md border border-zinc-300 bg-white px-2 text-sm dark:border-zinc-700 dark:bg-zinc-950">
            {!derivedFrom && <option value="">choose a scoring</option>}
            {options.map((o) => <option key={o.id} value={o.id}>{o.label}</option>)}
          </select>
        }
      />
      {b && a && (
        <div className="overflow-x-auto">
          <table className="w-full text-sm">
            <thead className="text-left text-xs text-zinc-500"><tr><th className="px-5 py-2">Metric</th><th className="px-2 py-2 text-right">{theirs.data?.source.label}</th><th className="px-2 py-2 text-right">this scoring</th><th className="px-5 py-2 text-right">change</th></tr></thead>
            <tbody>
              {[["overall", b.overall, a.overall] as const, ...codes.map((c) => [c, scoreOf(b, c), scoreOf(a, c)] as const)].map(([code, before, after]) => (
                <tr key={code} className="border-t border-zinc-100 dark:border-zinc-800">
                  <td className="px-5 py-1.5">{code === "overall" ? "Overall" : a.metrics.find((m) => m.code === code)?.name ?? b.metrics.find((m) => m.code === code)?.name}</td>
                  <td className="px-2 py-1.5 text-right tabular-nums">{scoreText(before)}</td>
                  <td className="px-2 py-1.5 text-right tabular-nums">{scoreText(after)}</td>
                  <td className="px-5 py-1.5 text-right tabular-nums">{before !== null && after !== null ? `${after - before >= 0 ? "+" : ""}${(after - before).toFixed(2)}` : ""}</td>
                </tr>
              ))}
              <tr className="border-t border-zinc-100 dark:border-zinc-800"><td className="px-5 py-1.5">Episodes (flagged)</td><td className="px-2 py-1.5 text-right tabular-nums">{b.episodes.length} ({flagged(b)})</td><td className="px-2 py-1.5 text-right tabular-nums">{a.episodes.length} ({flagged(a)})</td><td /></tr>
            </tbody>
          </table>
        </div>
      )}
    </Card>
  );
}

/** Episodes placed by their visual descriptors; the read-out names the episode under the cursor. */
function VisualMap({ points }: { points: Array<{ index: number; x: number; y: number }> }) {
  const sorted = useMemo(() => [...points].sort((a, b) => a.x - b.x), [points]);
  const episodeAt = (x: number) => sorted.filter((p) => p.x === x).map((p) => `#${p.index}`).join(", ");
  return (
    <LineChart
      testId="visual-map-chart"
      x={sorted.map((p) => p.x)}
      xLabel="component 1"
      formatX={(x) => `${episodeAt(x) ? `episode ${episodeAt(x)} · ` : ""}${x.toFixed(3)}`}
      yLabels={["component 2"]}
      series={[{ label: "component 2", values: sorted.map((p) => p.y), color: "#ea580c", points: true, width: 0 }]}
    />
  );
}
