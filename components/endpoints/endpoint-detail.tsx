"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useMemo, useState } from "react";
import { JobSteps } from "@/components/jobs/job-steps";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { LineChart, type Series } from "@/components/ui/line-chart";
import { cn } from "@/components/ui/cn";
import { CopyButton } from "@/components/ui/copy-button";
import { SelectField } from "@/components/ui/field";
import { PageHeader } from "@/components/ui/page-header";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { DEPLOY_STEPS } from "@/server/serving/deploy.steps";
import type { EndpointDetail as Detail } from "@/server/serving/endpoints.schemas";
import type { EndpointRequestStats } from "@/server/serving/request-stats.schemas";
import { EndpointStatus } from "./endpoint-status";
import { curlExample, pythonExample, sampleInputs, typescriptExample } from "./examples";

const LANGUAGES = [
  { key: "curl", label: "curl", build: curlExample },
  { key: "python", label: "Python", build: pythonExample },
  { key: "typescript", label: "TypeScript", build: typescriptExample },
] as const;

function Examples({ endpoint }: { endpoint: Detail }) {
  const [language, setLanguage] = useState<(typeof LANGUAGES)[number]["key"]>("curl");
  const current = LANGUAGES.find((l) => l.key === language)!;
  const code = current.build(endpoint);
  return (
    <Card>
      <CardHeader
        title="Call it"
        description={<>Make an API token under <Link href="/settings/tokens" className="underline">Settings → API tokens</Link> and put it in <code>GANTRY_TOKEN</code>. The inputs below are one sample of the model&apos;s real inputs.</>}
      />
      <CardBody className="space-y-4">
        <dl className="grid gap-1 text-sm">
          <div className="flex gap-3"><dt className="w-28 shrink-0 text-zinc-500">Inference</dt><dd className="font-mono break-all" data-testid="infer-url">POST {endpoint.urls.infer}</dd></div>
          <div className="flex gap-3"><dt className="w-28 shrink-0 text-zinc-500">Quick calls</dt><dd className="font-mono break-all">POST {endpoint.urls.predict}</dd></div>
          <div className="flex gap-3"><dt className="w-28 shrink-0 text-zinc-500">Metadata</dt><dd className="font-mono break-all">GET {endpoint.urls.metadata}</dd></div>
        </dl>
        <div className="flex items-center gap-2" role="tablist" aria-label="Example language">
          {LANGUAGES.map((l) => (
            <button
              key={l.key}
              type="button"
              role="tab"
              aria-selected={l.key === language}
              onClick={() => setLanguage(l.key)}
              className={cn("rounded-md px-3 py-1.5 text-sm", l.key === language ? "bg-zinc-900 text-white dark:bg-zinc-100 dark:text-zinc-900" : "text-zinc-600 hover:bg-zinc-100 dark:text-zinc-400 dark:hover:bg-zinc-800")}
            >
              {l.label}
            </button>
          ))}
          <span className="ml-auto"><CopyButton text={code} label={`Copy the ${current.label} example`} selectTarget={() => document.querySelector(`[data-testid="example-${language}"]`)} /></span>
        </div>
        <pre className="max-h-96 overflow-auto rounded-md bg-zinc-950 p-4 text-xs leading-relaxed text-zinc-100" data-testid={`example-${language}`} role="tabpanel">{code}</pre>
      </CardBody>
    </Card>
  );
}

/** Above this many characters the form is not prefilled: the sample would be too big to edit. */
const PREFILL_LIMIT = 200_000;

function TryIt({ endpoint }: { endpoint: Detail }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  // One line per input: readable for small tensors, and still valid JSON for large ones.
  const sample = useMemo(() => {
    const entries = Object.entries(sampleInputs(endpoint.signature)).map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
    return `{\n${entries.join(",\n")}\n}`;
  }, [endpoint.signature]);
  const [text, setText] = useState(() => (sample.length <= PREFILL_LIMIT ? sample : "{}"));
  const [parseError, setParseError] = useState<string | null>(null);
  // The model server writes a Try it request's count before it answers: the statistics read now include it.
  const tryIt = useMutation(trpc.endpoints.tryIt.mutationOptions({ onSettled: () => void queryClient.invalidateQueries({ queryKey: trpc.endpoints.stats.queryKey({ endpointId: endpoint.id }) }) }));
  const send = () => {
    let inputs: unknown;
    try {
      inputs = JSON.parse(text);
    } catch (error) {
      return setParseError(`The inputs are not valid JSON: ${(error as Error).message}`);
    }
    if (!inputs || typeof inputs !== "object" || Array.isArray(inputs)) return setParseError('The inputs must be a JSON object of input name → nested arrays, e.g. {"x": [[0.5, 0.5]]}');
    setParseError(null);
    tryIt.mutate({ endpointId: endpoint.id, inputs: inputs as Record<string, unknown> });
  };
  const result = tryIt.data;
  const isOk = result && result.status >= 200 && result.status < 300;
  return (
    <Card>
      <CardHeader title="Try it" description="Sends one request to the model server as you, through the portal: the same /predict call the examples make." />
      <CardBody className="space-y-3">
        <label className="block text-sm">
          <span className="mb-1.5 block font-medium">Inputs (JSON: input name → nested arrays)</span>
          <textarea
            value={text}
            onChange={(e) => setText(e.target.value)}
            spellCheck={false}
            rows={Math.min(14, Math.max(4, text.split("\n").length))}
            className="w-full rounded-md border border-zinc-300 bg-white p-3 font-mono text-xs dark:border-zinc-700 dark:bg-zinc-950"
          />
        </label>
        {sample.length > PREFILL_LIMIT && <p className="text-xs text-zinc-500">The model&apos;s inputs are too large to prefill here ({sample.length.toLocaleString("en")} characters); paste your own.</p>}
        <div className="flex items-center gap-3">
          <Button onClick={send} disabled={tryIt.isPending || endpoint.status !== "ready"}>{tryIt.isPending ? "Sending…" : "Send request"}</Button>
          {endpoint.status !== "ready" && (
            <span className="text-sm text-zinc-500">
              {endpoint.status === "deploying" ? "The endpoint is deploying; it answers once ready." : endpoint.status === "failed" ? "The endpoint failed to deploy; see why above, then deploy it again." : "The endpoint is stopped; deploy it again to call it."}
            </span>
          )}
          <Button variant="ghost" size="sm" onClick={() => setText(sample)}>Reset to the sample</Button>
        </div>
        {(parseError || tryIt.error) && <Alert>{parseError ?? errorMessage(tryIt.error)}</Alert>}
        {result && (
          <div data-testid="try-result">
            <p className="mb-2 text-sm">
              <span className={cn("font-medium", isOk ? "text-emerald-700 dark:text-emerald-400" : "text-red-700 dark:text-red-400")} data-testid="try-status">{result.status} {isOk ? "OK" : "Error"}</span>
              <span className="ml-3 text-zinc-500">{result.ms.toFixed(1)} ms</span>
            </p>
            <pre className="max-h-80 overflow-auto rounded-md bg-zinc-100 p-3 text-xs dark:bg-zinc-900">{JSON.stringify(result.body, null, 2)}</pre>
          </div>
        )}
      </CardBody>
    </Card>
  );
}

const ms = (v: number | null) => (v === null ? "—" : v < 10 ? `${v.toFixed(2)} ms` : `${Math.round(v)} ms`);

/** Requests and latency per minute, as two charts whose cursors move together (x in Unix seconds). */
function statsCharts(data: EndpointRequestStats) {
  const x = data.minutes.map((m) => m.at.getTime() / 1000);
  const traffic: Series[] = [
    { label: "requests", unit: "per min", values: data.minutes.map((m) => m.requests), color: "#0284c7" },
    { label: "errors", unit: "per min", values: data.minutes.map((m) => m.errors), color: "#ef4444" },
  ];
  // Minutes without requests have no latency: gaps, with a dot for each minute that has one.
  const latency: Series[] = [
    { label: "p50", unit: "ms", values: data.minutes.map((m) => m.p50Ms), color: "#10b981", points: true },
    { label: "p95", unit: "ms", values: data.minutes.map((m) => m.p95Ms), color: "#f59e0b", points: true },
  ];
  return { x, traffic, latency };
}

function RequestStats({ endpointId }: { endpointId: string }) {
  const trpc = useTRPC();
  // Read again every 5 s while the page is open, and as soon as Try it answers (TryIt above).
  const stats = useQuery({ ...trpc.endpoints.stats.queryOptions({ endpointId, minutes: 60 }), refetchInterval: 5000 });
  const data: EndpointRequestStats | undefined = stats.data;
  const charts = useMemo(() => (data ? statsCharts(data) : null), [data]);
  return (
    <Card>
      <CardHeader title="Requests, last hour" description={data?.lastRequestAt ? <>Last request <RelativeTime date={data.lastRequestAt} /></> : "No requests yet"} />
      <CardBody className="space-y-4">
        {stats.error && <Alert>{errorMessage(stats.error)}</Alert>}
        <dl className="grid grid-cols-2 gap-4 text-sm sm:grid-cols-4" data-testid="request-stats">
          <div><dt className="text-zinc-500">Requests</dt><dd className="text-xl font-semibold tabular-nums" data-testid="stats-requests">{data?.totals.requests ?? "—"}</dd></div>
          <div><dt className="text-zinc-500">Errors</dt><dd className={cn("text-xl font-semibold tabular-nums", data?.totals.errors ? "text-red-600" : "")}>{data?.totals.errors ?? "—"}</dd></div>
          <div><dt className="text-zinc-500">p50 latency</dt><dd className="text-xl font-semibold tabular-nums">{ms(data?.totals.p50Ms ?? null)}</dd></div>
          <div><dt className="text-zinc-500">p95 latency</dt><dd className="text-xl font-semibold tabular-nums">{ms(data?.totals.p95Ms ?? null)}</dd></div>
        </dl>
        {charts && (
          <div className="space-y-2">
            <LineChart x={charts.x} xLabel="time" xTime series={charts.traffic} yLabels={["requests per minute"]} syncKey={`endpoint-stats-${endpointId}`} height={160} testId="stats-chart-requests" />
            <LineChart x={charts.x} xLabel="time" xTime series={charts.latency} yLabels={["latency (ms)"]} syncKey={`endpoint-stats-${endpointId}`} height={160} testId="stats-chart-latency" />
          </div>
        )}
        <p className="text-xs text-zinc-500">Counted by the model server per minute (the last point is the minute under way); latency is estimated from a histogram. Live figures per process are on the model server&apos;s Prometheus <code>/metrics</code>.</p>
      </CardBody>
    </Card>
  );
}

function SettingsList({ endpoint }: { endpoint: Detail }) {
  const s = endpoint.settings;
  const rows: Array<[string, string]> = [
    ["Model type", s.modelType],
    ["Execution", `${s.executionProvider.toUpperCase()} · ${s.threads} thread${s.threads === 1 ? "" : "s"} per session`],
    ["Concurrency", `${s.concurrency} at once, queue of ${s.maxQueue}`],
    ["Maximum batch", String(s.maxBatch)],
    ["Timeout", s.timeoutMs ? `${s.timeoutMs / 1000} s` : "server default (MODEL_INFERENCE_TIMEOUT)"],
    ["Preprocessing", s.preprocessing ? Object.entries(s.preprocessing).map(([k, v]) => `${k}: (x − ${JSON.stringify(v.mean)}) / ${JSON.stringify(v.std)}`).join("; ") : "none"],
  ];
  return (
    <Card>
      <CardHeader title="Settings" />
      <CardBody>
        <dl className="divide-y divide-zinc-100 text-sm dark:divide-zinc-800">
          {rows.map(([k, v]) => <div key={k} className="grid grid-cols-3 gap-4 py-2"><dt className="text-zinc-500">{k}</dt><dd className="col-span-2 break-words">{v}</dd></div>)}
          <div className="grid grid-cols-3 gap-4 py-2">
            <dt className="text-zinc-500">Signature</dt>
            <dd className="col-span-2 font-mono text-xs">
              {endpoint.signature.inputs.map((i) => <div key={`i-${i.name}`}>in  {i.name}: {i.type}[{i.shape.join(", ")}]</div>)}
              {endpoint.signature.outputs.map((o) => <div key={`o-${o.name}`}>out {o.name}: {o.type}[{o.shape.join(", ")}]</div>)}
            </dd>
          </div>
        </dl>
      </CardBody>
    </Card>
  );
}

export function EndpointDetail({ endpointId }: { endpointId: string }) {
  const trpc = useTRPC();
  const router = useRouter();
  const queryClient = useQueryClient();
  const { can } = useRole();
  const endpoint = useQuery({
    ...trpc.endpoints.get.queryOptions({ endpointId }),
    refetchInterval: (q) => (q.state.data?.status === "deploying" ? 1000 : 10_000),
  });
  const model = useQuery({
    ...trpc.models.list.queryOptions(),
    enabled: can("operator"),
    select: (models) => models.find((m) => m.name === endpoint.data?.modelName)?.id ?? null,
  });
  const versions = useQuery({ ...trpc.models.get.queryOptions({ modelId: model.data ?? "00000000-0000-4000-8000-000000000000" }), enabled: Boolean(model.data) });
  const refresh = () => void queryClient.invalidateQueries({ queryKey: trpc.endpoints.get.queryKey({ endpointId }) });
  const undeploy = useMutation(trpc.endpoints.undeploy.mutationOptions({ onSuccess: refresh }));
  const remove = useMutation(trpc.endpoints.delete.mutationOptions({ onSuccess: () => router.push("/endpoints") }));
  const redeploy = useMutation(trpc.endpoints.create.mutationOptions({ onSuccess: refresh }));
  const changeVersion = useMutation(trpc.endpoints.changeVersion.mutationOptions({ onSuccess: refresh }));
  const [nextVersion, setNextVersion] = useState("");

  if (endpoint.error) return <Alert title="Cannot show this endpoint">{errorMessage(endpoint.error)}</Alert>;
  if (!endpoint.data) return <p className="text-sm text-zinc-500">Loading…</p>;
  const e = endpoint.data;
  const isLive = e.status === "deploying" || e.status === "ready";
  const otherReady = (versions.data?.versions ?? []).filter((v) => v.status === "ready" && v.id !== e.modelVersionId).sort((a, b) => b.number - a.number);
  const mutationError = undeploy.error ?? remove.error ?? redeploy.error ?? changeVersion.error;

  return (
    <>
      <nav aria-label="Breadcrumb" className="mb-2 text-sm text-zinc-500"><Link href="/endpoints" className="hover:underline">Endpoints</Link> / {e.name}</nav>
      <PageHeader
        title={e.name}
        description={
          <span className="flex flex-wrap items-center gap-2">
            <span data-testid="endpoint-status"><EndpointStatus status={e.status} /></span>
            {model.data ? <Link href={`/models/${model.data}`} className="hover:underline">{e.modelName}</Link> : e.modelName} · version {e.versionNumber}
          </span>
        }
        actions={can("operator") && (
          <>
            {isLive && <Button variant="secondary" onClick={() => confirm(`Stop serving ${e.name}? Its memory is freed; callers get 404 until it is deployed again.`) && undeploy.mutate({ endpointId })} disabled={undeploy.isPending}>Undeploy</Button>}
            {!isLive && <Button onClick={() => redeploy.mutate({ name: e.name, modelVersionId: e.modelVersionId, settings: e.settings })} disabled={redeploy.isPending}>Deploy again</Button>}
            {!isLive && <Button variant="danger" onClick={() => confirm(`Delete endpoint ${e.name}?`) && remove.mutate({ endpointId })} disabled={remove.isPending}>Delete</Button>}
          </>
        )}
      />
      {mutationError && <Alert className="mb-4">{errorMessage(mutationError)}</Alert>}
      {e.status === "failed" && e.error && <Alert className="mb-4" title="The endpoint is not serving">{e.error}</Alert>}
      {e.versionWarning && (
        <Alert tone="amber" className="mb-4" title="The version it serves is no longer valid">
          <p data-field="version-warning">{e.versionWarning}</p>
          <p className="mt-1">The endpoint keeps serving it; change it to a version that passed validation.</p>
        </Alert>
      )}
      <div className="space-y-6">
        {e.jobId && (
          <Card>
            <CardHeader title="Deploy" />
            <CardBody><JobSteps key={e.jobId} jobId={e.jobId} steps={DEPLOY_STEPS} title="Deploying" /></CardBody>
          </Card>
        )}
        <Examples endpoint={e} />
        <TryIt endpoint={e} />
        <RequestStats endpointId={endpointId} />
        <SettingsList endpoint={e} />
        {can("operator") && e.status === "ready" && otherReady.length > 0 && (
          <Card>
            <CardHeader title="Serve another version" description="The model server loads the new version beside the old one and swaps when it is ready; if it fails to load, the old one keeps serving." />
            <CardBody className="flex flex-wrap items-end gap-3">
              <SelectField label="Version" value={nextVersion} onChange={(ev) => setNextVersion(ev.target.value)} options={[{ value: "", label: "Choose a version" }, ...otherReady.map((v) => ({ value: v.id, label: `Version ${v.number}` }))]} className="w-56" />
              <Button onClick={() => nextVersion && changeVersion.mutate({ endpointId, modelVersionId: nextVersion })} disabled={!nextVersion || changeVersion.isPending}>Switch</Button>
            </CardBody>
          </Card>
        )}
      </div>
    </>
  );
}
