"use client";

import { useMutation, useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useEffect, useState, type ReactNode } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { cn } from "@/components/ui/cn";
import { SelectField, TextField } from "@/components/ui/field";
import { PageHeader } from "@/components/ui/page-header";
import { errorMessage, useTRPC } from "@/components/trpc";
import { useRole } from "@/components/settings/use-role";
import { VersionStatus } from "@/components/models/version-status";
import { signatureSchema, type Signature } from "@/server/models/validation.schemas";
import { endpointNameSchema, endpointSettingsSchema } from "@/server/serving/endpoints.schemas";
import { matchFeature, NormalizerFileError, parseNormalizer, parseNumberList, type Normalisation } from "./normalizer";

// The deploy wizard: five steps, each checked before the next, then one mutation that records
// the endpoint and queues its deploy job; the endpoint page follows that job live.

const STEPS = ["Model source", "Model type and hardware", "Preprocessing", "Endpoint settings", "Summary"] as const;

type ModelType = "policy" | "vision" | "generic";
const modelTypes: Array<{ value: ModelType; label: string; hint: string }> = [
  { value: "policy", label: "Robot policy", hint: "Observations (joint state, camera frames) in, actions out — e.g. an ACT or diffusion policy exported to ONNX." },
  { value: "vision", label: "Vision model", hint: "Images in, classes, boxes or embeddings out." },
  { value: "generic", label: "Other", hint: "Any ONNX model with numeric tensors." },
];

interface NormRow {
  enabled: boolean;
  mean: string;
  std: string;
}

const defaults = endpointSettingsSchema.parse({});

/** A URL-safe endpoint name from a model name: "SO-101 pick cube" → "so-101-pick-cube". */
export function slugify(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 63).replace(/-+$/, "") || "endpoint";
}

function Stepper({ current, reached, onPick }: { current: number; reached: number; onPick: (i: number) => void }) {
  return (
    <ol className="mb-6 grid grid-cols-5 gap-2" aria-label="Wizard steps">
      {STEPS.map((label, i) => (
        <li key={label}>
          <button
            type="button"
            onClick={() => onPick(i)}
            disabled={i > reached}
            aria-current={i === current ? "step" : undefined}
            className={cn(
              "w-full rounded-lg border px-3 py-2 text-left text-sm disabled:cursor-not-allowed disabled:opacity-50",
              i === current ? "border-brand-500 bg-brand-50 font-medium dark:bg-brand-700/20" : "border-zinc-200 hover:bg-zinc-50 dark:border-zinc-800 dark:hover:bg-zinc-900",
            )}
          >
            <span className="block text-xs text-zinc-500">Step {i + 1}</span>
            {label}
          </button>
        </li>
      ))}
    </ol>
  );
}

function Row({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="grid grid-cols-3 gap-4 py-2 text-sm">
      <dt className="text-zinc-500">{label}</dt>
      <dd className="col-span-2 break-words">{children}</dd>
    </div>
  );
}

export function EndpointWizard({ initialModelId, initialVersionId }: { initialModelId: string | null; initialVersionId: string | null }) {
  const trpc = useTRPC();
  const router = useRouter();
  const { can } = useRole();
  const [step, setStep] = useState(0);
  const [reached, setReached] = useState(0);
  const [modelId, setModelId] = useState<string | null>(initialModelId);
  const [versionId, setVersionId] = useState<string | null>(initialVersionId);
  const [modelType, setModelType] = useState<ModelType>("generic");
  const [threads, setThreads] = useState(String(defaults.threads));
  const [norm, setNorm] = useState<Record<string, NormRow>>({});
  const [normFile, setNormFile] = useState<{ name: string; features: Record<string, Normalisation> } | null>(null);
  const [normError, setNormError] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [timeoutSec, setTimeoutSec] = useState("");
  const [maxBatch, setMaxBatch] = useState(String(defaults.maxBatch));
  const [concurrency, setConcurrency] = useState(String(defaults.concurrency));
  const [maxQueue, setMaxQueue] = useState(String(defaults.maxQueue));
  const [stepError, setStepError] = useState<string | null>(null);

  // Read afresh: a model registered a moment ago must be offered.
  const models = useQuery({ ...trpc.models.list.queryOptions(), refetchOnMount: "always" });
  const model = useQuery({ ...trpc.models.get.queryOptions({ modelId: modelId ?? "00000000-0000-4000-8000-000000000000" }), enabled: Boolean(modelId) });
  const hardware = useQuery(trpc.endpoints.hardware.queryOptions());
  const create = useMutation(trpc.endpoints.create.mutationOptions({ onSuccess: (e) => router.push(`/endpoints/${e.id}`) }));

  const versions = [...(model.data?.versions ?? [])].sort((a, b) => b.number - a.number);
  const readyVersions = versions.filter((v) => v.status === "ready");
  const version = versions.find((v) => v.id === versionId) ?? null;
  const parsedSignature = version ? signatureSchema.safeParse(version.signature) : null;
  const signature: Signature | null = parsedSignature?.success ? parsedSignature.data : null;
  const floatInputs = signature?.inputs.filter((i) => i.type.startsWith("float")) ?? [];

  const pickModel = (id: string) => {
    setModelId(id || null);
    setVersionId(null);
    setNorm({});
    const picked = models.data?.find((m) => m.id === id);
    if (picked && !name) setName(slugify(picked.name));
  };
  // The newest ready version, and a name made from the model's, are the defaults once the model is known.
  const newestReadyId = readyVersions[0]?.id;
  const modelName = model.data?.name;
  useEffect(() => {
    if (!versionId && newestReadyId) setVersionId(newestReadyId);
  }, [versionId, newestReadyId]);
  useEffect(() => {
    if (modelName) setName((current) => current || slugify(modelName));
  }, [modelName]);

  const int = (text: string, label: string, min: number, max: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${label} must be a whole number from ${min} to ${max}`);
    return n;
  };

  /** The settings as the server takes them; throws a sentence naming the field that is wrong. */
  function buildSettings() {
    const preprocessing: Record<string, { mean: number[] | number; std: number[] | number }> = {};
    for (const input of floatInputs) {
      const row = norm[input.name];
      if (!row?.enabled) continue;
      const mean = parseNumberList(row.mean);
      const std = parseNumberList(row.std);
      if (!mean) throw new Error(`The mean for ${input.name} must be numbers separated by commas`);
      if (!std || std.some((v) => v <= 0)) throw new Error(`The std for ${input.name} must be positive numbers separated by commas`);
      const channels = input.shape[input.shape.length - 1];
      for (const [label, list] of [["mean", mean], ["std", std]] as const) {
        if (list.length !== 1 && typeof channels === "number" && list.length !== channels) {
          throw new Error(`The ${label} for ${input.name} has ${list.length} values; give one, or ${channels} (one per value of its last dimension)`);
        }
      }
      preprocessing[input.name] = { mean: mean.length === 1 ? mean[0] : mean, std: std.length === 1 ? std[0] : std };
    }
    const cpus = hardware.data?.cpus ?? 64;
    const timeout = timeoutSec.trim() === "" ? undefined : Number(timeoutSec);
    if (timeout !== undefined && !(timeout > 0 && timeout <= 3600)) throw new Error("The timeout must be a number of seconds from 0.001 to 3600, or empty for the server's default");
    return {
      modelType,
      executionProvider: "cpu" as const,
      threads: int(threads, "CPU threads", 1, Math.max(1, Math.min(64, cpus))),
      maxBatch: int(maxBatch, "Maximum batch", 1, 65_536),
      concurrency: int(concurrency, "Concurrency", 1, 256),
      maxQueue: int(maxQueue, "Queue length", 0, 10_000),
      ...(timeout !== undefined ? { timeoutMs: Math.max(1, Math.round(timeout * 1000)) } : {}),
      ...(Object.keys(preprocessing).length ? { preprocessing } : {}),
    };
  }

  function check(i: number): string | null {
    if (i === 0) {
      if (!modelId) return "Choose a model";
      if (!version) return "Choose a version";
      if (version.status !== "ready") return `Version ${version.number} is ${version.status}: only a version that passed validation can be served`;
      if (!signature) return "This version has no input/output signature; validate it again";
    }
    try {
      if (i === 1) int(threads, "CPU threads", 1, Math.max(1, Math.min(64, hardware.data?.cpus ?? 64)));
      if (i === 2 || i === 3) buildSettings();
    } catch (error) {
      return (error as Error).message;
    }
    if (i === 3) {
      const parsed = endpointNameSchema.safeParse(name);
      if (!parsed.success) return `The name ${parsed.error.issues[0].message}`;
    }
    return null;
  }

  const go = (target: number) => {
    for (let i = 0; i < target; i++) {
      const problem = check(i);
      if (problem) {
        setStep(i);
        setStepError(problem);
        return;
      }
    }
    setStepError(null);
    setStep(target);
    setReached((r) => Math.max(r, target));
  };

  const loadNormalizer = async (file: File | undefined) => {
    setNormError(null);
    if (!file) return;
    if (file.size > 64 * 1024 * 1024) return setNormError(`${file.name} is ${Math.round(file.size / 1024 / 1024)} MB; a normalizer file is a few kB`);
    try {
      const features = parseNormalizer(new Uint8Array(await file.arrayBuffer()), file.name);
      setNormFile({ name: file.name, features });
      const next = { ...norm };
      for (const input of floatInputs) {
        const key = matchFeature(input.name, Object.keys(features));
        if (key) next[input.name] = { enabled: true, mean: features[key].mean.join(", "), std: features[key].std.join(", ") };
      }
      setNorm(next);
    } catch (error) {
      setNormError(error instanceof NormalizerFileError ? error.message : `Could not read ${file.name}: ${(error as Error).message}`);
    }
  };

  const deploy = () => {
    const problem = [0, 1, 2, 3].map(check).find(Boolean);
    if (problem || !versionId) return setStepError(problem ?? "Choose a version");
    create.mutate({ name, modelVersionId: versionId, settings: buildSettings() });
  };

  if (!can("operator")) {
    return (
      <>
        <PageHeader title="New endpoint" />
        <Alert tone="amber" title="Operators deploy endpoints">Ask an admin of this organisation for the operator role.</Alert>
      </>
    );
  }

  const settingsPreview = (() => {
    try {
      return buildSettings();
    } catch {
      return null;
    }
  })();

  return (
    <>
      <nav aria-label="Breadcrumb" className="mb-2 text-sm text-zinc-500"><Link href="/endpoints" className="hover:underline">Endpoints</Link> / new</nav>
      <PageHeader title="New endpoint" description="Five steps from a validated model version to an HTTP endpoint; the deploy then runs as a job you can watch." />
      <Stepper current={step} reached={reached} onPick={go} />
      <Card>
        <CardHeader title={`${step + 1}. ${STEPS[step]}`} />
        <CardBody className="space-y-5">
          {step === 0 && (
            <>
              {models.data?.length === 0 && (
                <Alert tone="blue" title="No models yet">Register a model and add an ONNX version on the <Link href="/models" className="underline">Models page</Link>; it is validated, then it can be deployed here.</Alert>
              )}
              <SelectField
                label="Model"
                value={modelId ?? ""}
                onChange={(e) => pickModel(e.target.value)}
                options={[{ value: "", label: models.isPending ? "Loading…" : "Choose a model" }, ...(models.data ?? []).map((m) => ({ value: m.id, label: m.name }))]}
              />
              {modelId && (
                <fieldset className="space-y-2">
                  <legend className="mb-1 text-sm font-medium">Version</legend>
                  {versions.length === 0 && <p className="text-sm text-zinc-500">{model.isPending ? "Loading…" : "This model has no versions yet."}</p>}
                  {versions.map((v) => (
                    <label key={v.id} className={cn("flex items-center gap-3 rounded-md border px-3 py-2 text-sm", v.status === "ready" ? "border-zinc-200 dark:border-zinc-800" : "border-dashed border-zinc-200 text-zinc-400 dark:border-zinc-800")}>
                      <input type="radio" name="version" value={v.id} checked={versionId === v.id} disabled={v.status !== "ready"} onChange={() => setVersionId(v.id)} />
                      <span className="font-medium">Version {v.number}</span>
                      <VersionStatus status={v.status} />
                      <span className="text-zinc-500">{v.opset ? `opset ${v.opset}` : ""}{v.producer ? ` · ${v.producer}` : ""}</span>
                    </label>
                  ))}
                  <p className="text-xs text-zinc-500">
                    Only versions that passed validation can be served. Add another version (upload, URL or hub) on the <Link href={`/models/${modelId}`} className="underline">model&apos;s page</Link>.
                  </p>
                </fieldset>
              )}
              {signature && (
                <div className="text-sm">
                  <p className="mb-1 font-medium">Signature</p>
                  <ul className="font-mono text-xs text-zinc-600 dark:text-zinc-400">
                    {signature.inputs.map((i) => <li key={`in-${i.name}`}>in  {i.name}: {i.type}[{i.shape.join(", ")}]</li>)}
                    {signature.outputs.map((o) => <li key={`out-${o.name}`}>out {o.name}: {o.type}[{o.shape.join(", ")}]</li>)}
                  </ul>
                </div>
              )}
            </>
          )}

          {step === 1 && (
            <>
              <fieldset className="space-y-2">
                <legend className="mb-1 text-sm font-medium">Model type</legend>
                {modelTypes.map((t) => (
                  <label key={t.value} className="flex items-start gap-3 rounded-md border border-zinc-200 px-3 py-2 text-sm dark:border-zinc-800">
                    <input type="radio" name="modelType" className="mt-1" checked={modelType === t.value} onChange={() => setModelType(t.value)} />
                    <span><span className="font-medium">{t.label}</span><span className="block text-zinc-500">{t.hint}</span></span>
                  </label>
                ))}
              </fieldset>
              <fieldset className="space-y-2">
                <legend className="mb-1 text-sm font-medium">Execution provider</legend>
                {(hardware.data?.providers ?? [{ name: "cpu", available: true, note: "" }]).map((p) => (
                  <label key={p.name} className={cn("flex items-start gap-3 rounded-md border px-3 py-2 text-sm", p.available ? "border-zinc-200 dark:border-zinc-800" : "border-dashed border-zinc-200 text-zinc-400 dark:border-zinc-800")}>
                    <input type="radio" name="provider" className="mt-1" checked={p.name === "cpu"} disabled={!p.available} readOnly />
                    <span><span className="font-medium uppercase">{p.name}</span><span className="block">{p.note}</span></span>
                  </label>
                ))}
              </fieldset>
              <TextField
                label="CPU threads per session"
                type="number"
                min={1}
                max={hardware.data?.cpus ?? 64}
                value={threads}
                onChange={(e) => setThreads(e.target.value)}
                hint={hardware.data ? `This machine has ${hardware.data.cpus} core${hardware.data.cpus === 1 ? "" : "s"}. Each of the endpoint's concurrent sessions uses this many.` : undefined}
              />
            </>
          )}

          {step === 2 && (
            <>
              <p className="text-sm text-zinc-500">
                Float inputs can be normalised on the server — x′ = (x − mean) / std — so clients send raw values. Give one value, or one per value of the input&apos;s last dimension, or read them from a LeRobot file: a dataset&apos;s <code>meta/stats.json</code> or a policy&apos;s normalizer <code>.safetensors</code>.
              </p>
              <label className="block text-sm">
                <span className="mb-1.5 block font-medium">LeRobot normalizer file</span>
                <input type="file" accept=".json,.safetensors" onChange={(e) => void loadNormalizer(e.target.files?.[0])} className="text-sm" />
              </label>
              {normFile && <p className="text-sm text-zinc-500">{normFile.name}: {Object.keys(normFile.features).join(", ")}</p>}
              {normError && <Alert>{normError}</Alert>}
              {floatInputs.length === 0 && <p className="text-sm text-zinc-500">This model has no float inputs; nothing to normalise.</p>}
              {floatInputs.map((input) => {
                const row = norm[input.name] ?? { enabled: false, mean: "", std: "" };
                const set = (patch: Partial<NormRow>) => setNorm({ ...norm, [input.name]: { ...row, ...patch } });
                return (
                  <div key={input.name} className="rounded-md border border-zinc-200 p-3 dark:border-zinc-800" data-input={input.name}>
                    <label className="flex items-center gap-2 text-sm">
                      <input type="checkbox" checked={row.enabled} onChange={(e) => set({ enabled: e.target.checked })} />
                      <span>Normalise <span className="font-mono">{input.name}</span> <span className="text-zinc-500">[{input.shape.join(", ")}]</span></span>
                    </label>
                    {row.enabled && (
                      <div className="mt-3 grid gap-3 sm:grid-cols-2">
                        <TextField label={`Mean of ${input.name}`} value={row.mean} onChange={(e) => set({ mean: e.target.value })} placeholder="e.g. 0.485, 0.456, 0.406" />
                        <TextField label={`Std of ${input.name}`} value={row.std} onChange={(e) => set({ std: e.target.value })} placeholder="e.g. 0.229, 0.224, 0.225" />
                      </div>
                    )}
                  </div>
                );
              })}
            </>
          )}

          {step === 3 && (
            <div className="grid gap-4 sm:grid-cols-2">
              <TextField label="Endpoint name" value={name} onChange={(e) => setName(e.target.value)} hint="Part of the URL: lowercase letters, digits and dashes." maxLength={63} />
              <SelectField
                label="Version to serve"
                value={versionId ?? ""}
                onChange={(e) => setVersionId(e.target.value)}
                options={readyVersions.map((v) => ({ value: v.id, label: `Version ${v.number}` }))}
              />
              <TextField label="Timeout (seconds)" type="number" step="any" min={0.001} value={timeoutSec} onChange={(e) => setTimeoutSec(e.target.value)} placeholder="server default" hint="A request running longer is answered 504. Empty: MODEL_INFERENCE_TIMEOUT." />
              <TextField label="Maximum batch" type="number" min={1} value={maxBatch} onChange={(e) => setMaxBatch(e.target.value)} hint="The largest first dimension one request may send." />
              <TextField label="Concurrency" type="number" min={1} value={concurrency} onChange={(e) => setConcurrency(e.target.value)} hint="Requests run at once, each on its own session." />
              <TextField label="Queue length" type="number" min={0} value={maxQueue} onChange={(e) => setMaxQueue(e.target.value)} hint="Requests that may wait for a free session; beyond it, 429." />
            </div>
          )}

          {step === 4 && (
            <dl className="divide-y divide-zinc-100 dark:divide-zinc-800" aria-label="Summary">
              <Row label="Model">{model.data?.name} · version {version?.number}</Row>
              <Row label="Signature">{signature ? `${signature.inputs.map((i) => i.name).join(", ")} → ${signature.outputs.map((o) => o.name).join(", ")}` : "—"}</Row>
              <Row label="Model type">{modelTypes.find((t) => t.value === modelType)?.label}</Row>
              <Row label="Hardware">CPU · {threads} thread{threads === "1" ? "" : "s"} per session</Row>
              <Row label="Preprocessing">
                {settingsPreview?.preprocessing ? Object.entries(settingsPreview.preprocessing).map(([k, v]) => `${k}: mean ${JSON.stringify(v.mean)}, std ${JSON.stringify(v.std)}`).join("; ") : "none"}
              </Row>
              <Row label="Endpoint name"><span className="font-mono">{name}</span></Row>
              <Row label="Limits">
                timeout {timeoutSec ? `${timeoutSec} s` : "server default"} · batch ≤ {maxBatch} · {concurrency} at once · queue {maxQueue}
              </Row>
              <Row label="Deploying">Runs six steps as a job — validate, fetch, load, warm up, start serving, ready — which the endpoint page shows live.</Row>
            </dl>
          )}

          {(stepError || create.error) && <Alert>{stepError ?? errorMessage(create.error)}</Alert>}

          <div className="flex items-center gap-3 border-t border-zinc-100 pt-4 dark:border-zinc-800">
            {step > 0 && <Button variant="secondary" onClick={() => { setStepError(null); setStep(step - 1); }}>Back</Button>}
            {step < STEPS.length - 1 && <Button onClick={() => go(step + 1)}>Next</Button>}
            {step === STEPS.length - 1 && <Button onClick={deploy} disabled={create.isPending}>{create.isPending ? "Deploying…" : "Deploy"}</Button>}
            <span className="ml-auto text-sm text-zinc-500">Step {step + 1} of {STEPS.length}</span>
          </div>
        </CardBody>
      </Card>
    </>
  );
}
