import Link from "next/link";
import type { ReactNode } from "react";
import { Badge, type Tone } from "@/components/ui/badge";
import { Card, CardBody, CardHeader } from "@/components/ui/card";

// The OpenAPI document drawn for people: routes grouped by area, each with who may call it,
// its parameters, its body's fields and an example to copy. Plain <details>, no script.

type Schema = Record<string, unknown>;
interface Parameter { name: string; in: string; required: boolean; description?: string; schema: Schema }
interface Operation {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  parameters?: Parameter[];
  requestBody?: { required: boolean; description?: string; content: Record<string, { schema: Schema }> };
  responses: Record<string, { description: string; content?: Record<string, { schema: Schema; "x-gantry-event-data"?: Schema }> }>;
  "x-gantry-auth": { kind: "none" | "member" | "token" | "instance"; role?: string; text: string };
  "x-gantry-example": { params?: Record<string, string>; query?: Record<string, string>; headers?: Record<string, string>; body?: unknown };
}
export interface OpenApiDocument {
  tags: { name: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
}

const methodTone: Record<string, Tone> = { get: "blue", head: "blue", post: "green", put: "amber", patch: "amber", delete: "red" };
const slug = (text: string) => text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
const refName = (ref: unknown) => (typeof ref === "string" ? ref.split("/").pop()! : "");

function resolve(doc: OpenApiDocument, schema: Schema | undefined): Schema | undefined {
  return schema && typeof schema.$ref === "string" ? doc.components.schemas[refName(schema.$ref)] : schema;
}

/** A schema in a few words: `string (uuid)`, `integer 1..500`, `"edge" | "local"`, `Foo[]`. */
function typeOf(schema: Schema | undefined): string {
  if (!schema) return "any";
  if (schema.$ref) return refName(schema.$ref);
  if ("const" in schema) return JSON.stringify(schema.const);
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  const union = (schema.oneOf ?? schema.anyOf) as Schema[] | undefined;
  if (union) return union.map(typeOf).join(" | ");
  if (schema.type === "array") return `${typeOf(schema.items as Schema)}[]`;
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : typeof schema.type === "string" ? schema.type : "any";
  const min = schema.minimum ?? schema.minLength ?? schema.minItems;
  const max = schema.maximum ?? schema.maxLength ?? schema.maxItems;
  const range = min !== undefined || (max !== undefined && Number(max) < Number.MAX_SAFE_INTEGER) ? ` ${min ?? ""}..${max !== undefined && Number(max) < Number.MAX_SAFE_INTEGER ? max : ""}` : "";
  const format = typeof schema.format === "string" ? ` (${schema.format})` : "";
  return `${type}${format}${range}`;
}

function curl(method: string, path: string, op: Operation): string {
  const ex = op["x-gantry-example"];
  const url = path.replace(/\{(\w+)\}/g, (_m, name: string) => ex.params?.[name] ?? `{${name}}`) + (ex.query ? `?${new URLSearchParams(ex.query)}` : "");
  const lines = [`curl${method === "get" ? "" : ` -X ${method.toUpperCase()}`} "$GANTRY_URL${url}"`];
  if (op["x-gantry-auth"].kind !== "none") lines.push(`-H "Authorization: Bearer $GANTRY_TOKEN"`);
  for (const [name, value] of Object.entries(ex.headers ?? {})) lines.push(`-H "${name}: ${value}"`);
  const json = op.requestBody?.content["application/json"];
  if (json && ex.body !== undefined) lines.push(`-H "content-type: application/json"`, `-d '${JSON.stringify(ex.body)}'`);
  else if (op.requestBody && typeof ex.body === "string") lines.push(`--data-binary @file   # ${ex.body}`);
  return lines.join(" \\\n  ");
}

/** The document's text with its `code` spans set as code (descriptions are CommonMark in OpenAPI). */
function Inline({ text }: { text: string }) {
  return (
    <>
      {text.split("`").map((part, i) =>
        i % 2 ? (
          <code key={i} className="font-mono text-[0.85em]">
            {part}
          </code>
        ) : (
          part
        ),
      )}
    </>
  );
}

function Section({ title, children }: { title: string; children: ReactNode }) {
  return (
    <div>
      <h4 className="mb-1 text-xs font-semibold uppercase tracking-wide text-zinc-500">{title}</h4>
      {children}
    </div>
  );
}

function FieldTable({ rows }: { rows: { name: string; where?: string; required: boolean; type: string; description?: string }[] }) {
  return (
    <table className="w-full text-left text-sm">
      <tbody className="divide-y divide-zinc-100 dark:divide-zinc-800">
        {rows.map((r) => (
          <tr key={`${r.where}-${r.name}`}>
            <td className="py-1 pr-3 align-top font-mono text-xs">
              {r.name}
              {r.required && <span className="text-red-600" title="required">*</span>}
            </td>
            {r.where !== undefined && <td className="py-1 pr-3 align-top text-xs text-zinc-500">{r.where}</td>}
            <td className="break-all py-1 pr-3 align-top font-mono text-xs text-zinc-600 dark:text-zinc-400">{r.type}</td>
            <td className="py-1 align-top text-xs text-zinc-500">{r.description}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function BodyFields({ doc, schema }: { doc: OpenApiDocument; schema: Schema }) {
  const resolved = resolve(doc, schema);
  const properties = resolved?.properties as Record<string, Schema> | undefined;
  if (!properties) return <p className="font-mono text-xs text-zinc-600 dark:text-zinc-400">{typeOf(schema)}{resolved?.oneOf ? " (one of several shapes; see the JSON Schema)" : ""}</p>;
  const required = new Set((resolved?.required ?? []) as string[]);
  return <FieldTable rows={Object.entries(properties).map(([name, p]) => ({ name, required: required.has(name), type: typeOf(p), description: typeof p.description === "string" ? p.description : undefined }))} />;
}

function OperationDetails({ doc, method, path, op }: { doc: OpenApiDocument; method: string; path: string; op: Operation }) {
  const auth = op["x-gantry-auth"];
  const body = op.requestBody;
  const jsonBody = body?.content["application/json"];
  return (
    <details id={op.operationId} className="group border-t border-zinc-100 first:border-t-0 dark:border-zinc-800">
      <summary className="flex cursor-pointer list-none flex-wrap items-center gap-3 px-5 py-3 hover:bg-zinc-50 dark:hover:bg-zinc-800/40 [&::-webkit-details-marker]:hidden">
        <span aria-hidden className="text-xs text-zinc-400 transition-transform group-open:rotate-90">▶</span>
        <Badge tone={methodTone[method]} className="w-16 justify-center font-mono uppercase">{method}</Badge>
        <code className="font-mono text-sm">{path}</code>
        <span className="min-w-0 flex-1 text-sm text-zinc-500"><Inline text={op.summary} /></span>
        <Badge tone={auth.kind === "none" ? "neutral" : auth.kind === "token" ? "amber" : "neutral"}>{auth.kind === "none" ? "public" : auth.kind === "instance" ? "instance admin · metrics token" : `${auth.kind === "token" ? "token · " : ""}${auth.role}+`}</Badge>
      </summary>
      <div className="space-y-4 bg-zinc-50/60 px-5 py-4 dark:bg-zinc-950/40">
        {op.description && <p className="text-sm"><Inline text={op.description} /></p>}
        <Section title="Authentication"><p className="text-sm text-zinc-600 dark:text-zinc-400"><Inline text={auth.text} /></p></Section>
        {op.parameters?.length ? (
          <Section title="Parameters">
            <FieldTable rows={op.parameters.map((p) => ({ name: p.name, where: p.in, required: p.required, type: typeOf(p.schema), description: p.description }))} />
          </Section>
        ) : null}
        {body && (
          <Section title={`Body${body.required ? "" : " (optional)"} · ${Object.keys(body.content).join(", ")}`}>
            {body.description && <p className="mb-1 text-sm text-zinc-600 dark:text-zinc-400"><Inline text={body.description} /></p>}
            {jsonBody && <BodyFields doc={doc} schema={jsonBody.schema} />}
            {jsonBody && (
              <details className="mt-2">
                <summary className="cursor-pointer text-xs text-zinc-500">JSON Schema: {refName(jsonBody.schema.$ref)}</summary>
                <pre className="mt-1 max-h-80 overflow-auto rounded-md bg-white p-3 text-xs dark:bg-zinc-900">{JSON.stringify(resolve(doc, jsonBody.schema), null, 2)}</pre>
              </details>
            )}
          </Section>
        )}
        <Section title="Responses">
          <ul className="space-y-1 text-sm">
            {Object.entries(op.responses).map(([status, r]) => {
              const [type, media] = Object.entries(r.content ?? {})[0] ?? [];
              const events = media?.["x-gantry-event-data"];
              return (
                <li key={status} className="flex flex-wrap gap-2">
                  <span className={`font-mono text-xs ${status.startsWith("2") || status.startsWith("3") ? "text-emerald-700 dark:text-emerald-400" : "text-red-700 dark:text-red-400"}`}>{status}</span>
                  <span className="text-zinc-600 dark:text-zinc-400"><Inline text={r.description} /></span>
                  {type && <span className="font-mono text-xs text-zinc-500">{type}{media?.schema.$ref ? ` · ${refName(media.schema.$ref)}` : ""}{events ? ` · data: ${refName(events.$ref)}` : ""}</span>}
                </li>
              );
            })}
          </ul>
        </Section>
        <Section title="Example">
          <pre className="overflow-x-auto rounded-md bg-zinc-900 p-3 text-xs text-zinc-100">{curl(method, path, op)}</pre>
        </Section>
      </div>
    </details>
  );
}

export function ApiReference({ doc }: { doc: OpenApiDocument }) {
  const operations = Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ path, method, op })));
  const groups = doc.tags.map((t) => ({ name: t.name, ops: operations.filter((o) => o.op.tags[0] === t.name) })).filter((g) => g.ops.length);
  return (
    <div className="space-y-6">
      <Card>
        <CardHeader title="Calling the API" description={`${operations.length} REST routes, and every tRPC procedure the portal's pages use.`} />
        <CardBody className="space-y-2 text-sm">
          <p>
            Scripts and agents send an API token (<Link className="underline" href="/settings/tokens">make one</Link>) as <code className="font-mono text-xs">Authorization: Bearer &lt;token&gt;</code>; it acts in its organisation with the lower of its scopes and its maker&apos;s role. The
            examples below read the portal&apos;s address from <code className="font-mono text-xs">$GANTRY_URL</code> and the token from <code className="font-mono text-xs">$GANTRY_TOKEN</code>. Errors are{" "}
            <code className="font-mono text-xs">{'{"error": {"code", "message"}}'}</code>.
          </p>
          <p>
            The machine-readable OpenAPI 3.1 document is at{" "}
            <a className="font-mono text-xs underline" href="/api/openapi.json">/api/openapi.json</a>. Everything else is a tRPC procedure at <code className="font-mono text-xs">/api/trpc</code>: <Link href="/docs/api" className="underline">the API guide</Link> shows the typed TypeScript client.
          </p>
          <nav aria-label="Areas" className="flex flex-wrap gap-2 pt-2">
            {groups.map((g) => (
              <a key={g.name} href={`#${slug(g.name)}`} className="rounded-full border border-zinc-200 px-3 py-1 text-xs hover:bg-zinc-50 dark:border-zinc-700 dark:hover:bg-zinc-800">
                {g.name} <span className="text-zinc-400">{g.ops.length}</span>
              </a>
            ))}
          </nav>
        </CardBody>
      </Card>
      {groups.map((g) => (
        <section key={g.name} id={slug(g.name)} aria-label={g.name} className="scroll-mt-6">
          <Card>
            <CardHeader title={g.name} />
            <div>
              {g.ops.map((o) => (
                <OperationDetails key={`${o.method} ${o.path}`} doc={doc} method={o.method} path={o.path} op={o.op} />
              ))}
            </div>
          </Card>
        </section>
      ))}
    </div>
  );
}
