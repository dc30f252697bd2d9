"use client";

import { useInfiniteQuery } from "@tanstack/react-query";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { Card } from "@/components/ui/card";
import { OlderPages } from "@/components/ui/older-pages";
import { Alert } from "@/components/ui/alert";
import { SelectField } from "@/components/ui/field";
import { PageHeader } from "@/components/ui/page-header";
import { errorMessage, useTRPC } from "@/components/trpc";
import { jobCatalog } from "@/server/jobs/catalog";
import { jobStatusSchema } from "@/server/jobs/jobs.schemas";
import { JobTable } from "./job-table";
import { StartSelftestButton } from "./start-selftest-button";

export function JobsPage() {
  const trpc = useTRPC();
  const router = useRouter();
  const pathname = usePathname();
  const params = useSearchParams();
  const status = jobStatusSchema.safeParse(params.get("status")).data;
  const kind = jobCatalog.some((d) => d.name === params.get("kind")) ? params.get("kind")! : undefined;
  const limit = [50, 100, 200].includes(Number(params.get("limit"))) ? Number(params.get("limit")) : 50;
  const jobs = useInfiniteQuery(trpc.jobs.list.infiniteQueryOptions({ status, kind, limit }, { getNextPageParam: (page) => page.nextCursor ?? undefined }));
  const items = jobs.data?.pages.flatMap((p) => p.items);

  const setFilter = (key: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(key, value);
    else next.delete(key);
    router.replace(`${pathname}${next.size ? `?${next}` : ""}`);
  };

  return (
    <>
      <PageHeader title="Jobs" description="Every slow or remote step runs as a job. Progress updates live." actions={<StartSelftestButton />} />
      <div className="mb-4 flex flex-wrap gap-4">
        <SelectField label="Status" className="w-44" value={status ?? ""} onChange={(e) => setFilter("status", e.target.value)} options={[{ value: "", label: "Any status" }, ...jobStatusSchema.options.map((s) => ({ value: s, label: s }))]} />
        <SelectField label="Kind" className="w-52" value={kind ?? ""} onChange={(e) => setFilter("kind", e.target.value)} options={[{ value: "", label: "Any kind" }, ...jobCatalog.map((d) => ({ value: d.name, label: d.title }))]} />
        <SelectField label="Show" className="w-32" value={String(limit)} onChange={(e) => setFilter("limit", e.target.value === "50" ? "" : e.target.value)} options={[50, 100, 200].map((n) => ({ value: String(n), label: `${n} jobs` }))} />
      </div>
      {jobs.error && <Alert className="mb-4">{errorMessage(jobs.error)}</Alert>}
      <Card>{items ? <JobTable jobs={items} caption="Jobs" /> : <p className="px-5 py-10 text-sm text-zinc-500">Loading…</p>}</Card>
      {items && <OlderPages shown={items.length} noun={["job", "jobs"]} page={limit} isFiltered={Boolean(status || kind)} query={jobs} />}
    </>
  );
}
