"use client";

import { useInfiniteQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Alert } from "@/components/ui/alert";
import { Card } from "@/components/ui/card";
import { OlderPages } from "@/components/ui/older-pages";
import { SelectField, TextField } from "@/components/ui/field";
import { errorMessage, useTRPC, useTRPCClient } from "@/components/trpc";
import { auditActions } from "@/server/audit/audit.schemas";
import { useRole } from "./use-role";

const PAGE = 100;

/** An entry's details as "key value" pairs, nested values as JSON. */
function Details({ data }: { data: Record<string, unknown> }) {
  const entries = Object.entries(data);
  if (!entries.length) return null;
  return (
    <dl className="flex flex-wrap gap-x-3 gap-y-0.5">
      {entries.map(([key, value]) => (
        <div key={key} className="flex gap-1">
          <dt className="text-zinc-400">{key}</dt>
          <dd className="break-all text-zinc-600 dark:text-zinc-300">{typeof value === "string" ? value : JSON.stringify(value)}</dd>
        </div>
      ))}
    </dl>
  );
}

export function AuditSettings() {
  const trpc = useTRPC();
  const { can, role } = useRole();
  const [action, setAction] = useState("");
  const [actor, setActor] = useState("");
  const client = useTRPCClient();
  const filters = { action: action || undefined, actor: actor || undefined, limit: PAGE };
  // Page by page, newest first: "Show older" reads the next page before the oldest shown.
  const audit = useInfiniteQuery({
    queryKey: [...trpc.audit.list.queryKey(filters), "pages"],
    queryFn: ({ pageParam }) => client.audit.list.query({ ...filters, before: pageParam }),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (page) => page.nextBefore ?? undefined,
    enabled: can("admin"),
  });
  const items = audit.data?.pages.flatMap((p) => p.items);
  if (role && !can("admin")) return <Alert tone="amber">The audit log is for admins and owners.</Alert>;
  const groups = [...new Set(auditActions.map((a) => a.split(".")[0]))];

  return (
    <>
      <div className="mb-4 flex flex-wrap gap-4">
        <SelectField label="Action" className="w-56" value={action} onChange={(e) => setAction(e.target.value)} options={[{ value: "", label: "All actions" }, ...groups.map((g) => ({ value: `${g}.`, label: `${g}.*` })), ...auditActions.map((a) => ({ value: a, label: a }))]} />
        <TextField label="Actor" className="w-56" value={actor} onChange={(e) => setActor(e.target.value)} placeholder="name contains…" />
      </div>
      {audit.error && <Alert className="mb-4">{errorMessage(audit.error)}</Alert>}
      <Card className="overflow-x-auto">
        <table className="w-full text-left text-sm">
          <caption className="sr-only">Audit log</caption>
          <thead className="border-b border-zinc-200 text-xs uppercase tracking-wide text-zinc-500 dark:border-zinc-800">
            <tr><th scope="col" className="px-5 py-2">When</th><th scope="col" className="px-3 py-2">Who</th><th scope="col" className="px-3 py-2">Action</th><th scope="col" className="px-3 py-2">Target</th><th scope="col" className="px-5 py-2">Details</th></tr>
          </thead>
          <tbody className="divide-y divide-zinc-100 dark:divide-zinc-800">
            {items?.map((e) => (
              <tr key={e.id} data-action={e.action}>
                <td className="whitespace-nowrap px-5 py-2 text-zinc-500">{e.at.toLocaleString()}</td>
                <td className="px-3 py-2">{e.actor}</td>
                <td className="px-3 py-2 font-mono text-xs">{e.action}</td>
                <td className="max-w-56 break-all px-3 py-2 font-mono text-xs">{e.target ?? "—"}</td>
                <td className="min-w-64 max-w-xl px-5 py-2 font-mono text-xs"><Details data={e.data} /></td>
              </tr>
            ))}
            {items?.length === 0 && <tr><td colSpan={5} className="px-5 py-8 text-center text-zinc-500">Nothing matches.</td></tr>}
          </tbody>
        </table>
      </Card>
      {items && items.length > 0 && <OlderPages shown={items.length} noun={["entry", "entries"]} page={PAGE} isFiltered={Boolean(action || actor)} query={audit} />}
    </>
  );
}
