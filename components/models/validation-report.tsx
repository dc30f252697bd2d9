import { Alert } from "@/components/ui/alert";
import { validationReportSchema, type TensorSpec, type ValidationReport } from "@/server/models/validation.schemas";
import { formatBytes } from "./version-status";

function Tensors({ title, tensors }: { title: string; tensors: TensorSpec[] }) {
  return (
    <div>
      <h4 className="mb-1 text-xs font-medium uppercase tracking-wide text-zinc-500">{title}</h4>
      <table className="w-full text-left text-sm">
        <caption className="sr-only">{title}</caption>
        <thead className="text-xs text-zinc-500"><tr><th scope="col" className="py-1 pr-3 font-medium">Name</th><th scope="col" className="py-1 pr-3 font-medium">Type</th><th scope="col" className="py-1 font-medium">Shape</th></tr></thead>
        <tbody>
          {tensors.map((t) => (
            <tr key={t.name} className="font-mono text-xs">
              <td className="py-1 pr-3">{t.name}</td>
              <td className="py-1 pr-3">{t.type}</td>
              <td className="py-1">[{t.shape.map((d) => (typeof d === "string" ? <em key={String(d)} className="text-brand-600 not-italic">{d}</em> : d)).reduce<React.ReactNode[]>((acc, d, i) => (i ? [...acc, ", ", d] : [d]), [])}]</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

const ms = (v: number | null) => (v == null ? "—" : `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms`);
const diff = (v: number) => `max |diff| ${v.toExponential(2)}`;

/** The test vector's outcome in a few words; reports from before it was kept apart have only the difference. */
function vectorSummary(r: ValidationReport): string {
  const v = r.testVector;
  if (!v) return r.maxAbsDiff == null ? "none given" : diff(r.maxAbsDiff);
  if (!v.ok) return v.maxAbsDiff == null ? "did not pass" : `did not pass · ${diff(v.maxAbsDiff)}`;
  if (v.maxAbsDiff == null) return "ran (no expected outputs)";
  return `passed · ${diff(v.maxAbsDiff)}${v.tolerance == null ? "" : ` ≤ ${v.tolerance}`}`;
}

/** A version's stored validation report: signature, timings, memory, the model's problems and the test vector's outcome. */
export function ValidationReportView({ report: raw }: { report: unknown }) {
  const parsed = validationReportSchema.safeParse(raw);
  if (!parsed.success) return <p className="text-sm text-zinc-500">No validation report yet.</p>;
  const r = parsed.data;
  return (
    <div className="space-y-4" data-testid="validation-report">
      {r.problems.length > 0 && (
        <Alert tone={r.ok ? "amber" : "red"} title={r.ok ? "Notes" : "This model did not pass validation"}>
          <ul className="list-disc pl-5">{r.problems.map((p) => <li key={p}>{p}</li>)}</ul>
        </Alert>
      )}
      {r.testVector && !r.testVector.ok && (
        <Alert tone="amber" title={r.ok ? "The test vector did not pass; the version is ready, as the model loads and runs" : "The test vector"}>
          <ul className="list-disc pl-5" data-testid="test-vector-problems">{r.testVector.problems.map((p) => <li key={p}>{p}</li>)}</ul>
        </Alert>
      )}
      <dl className="grid grid-cols-2 gap-4 text-sm sm:grid-cols-4">
        <div><dt className="text-zinc-500">p50 latency</dt><dd className="tabular-nums" data-testid="p50">{ms(r.p50Ms)}</dd></div>
        <div><dt className="text-zinc-500">p95 latency</dt><dd className="tabular-nums">{ms(r.p95Ms)}</dd></div>
        <div><dt className="text-zinc-500">Peak memory</dt><dd className="tabular-nums">{formatBytes(r.peakRssBytes)}</dd></div>
        <div><dt className="text-zinc-500">Timed runs</dt><dd className="tabular-nums">{r.runs}</dd></div>
        <div><dt className="text-zinc-500">Opset</dt><dd>{r.opset ?? "—"}</dd></div>
        <div><dt className="text-zinc-500">Producer</dt><dd>{r.producer || "—"}</dd></div>
        <div><dt className="text-zinc-500">Test vector</dt><dd className="tabular-nums" data-testid="test-vector">{vectorSummary(r)}</dd></div>
        <div><dt className="text-zinc-500">Dimensions used</dt><dd className="font-mono text-xs">{Object.keys(r.dims).length ? Object.entries(r.dims).map(([k, v]) => `${k}=${v}`).join(", ") : "—"}</dd></div>
      </dl>
      {r.signature && (
        <div className="grid gap-4 md:grid-cols-2">
          <Tensors title="Inputs" tensors={r.signature.inputs} />
          <Tensors title="Outputs" tensors={r.signature.outputs} />
        </div>
      )}
    </div>
  );
}
