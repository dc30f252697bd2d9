"use client";

import Link from "next/link";
import { RelativeTime } from "@/components/ui/time";
import type { JobDto } from "@/server/jobs/jobs.schemas";
import { JobProgress, JobStatusBadge } from "./job-status";

export function JobTable({ jobs, caption }: { jobs: JobDto[]; caption: string }) {
  if (jobs.length === 0) return <p className="px-5 py-10 text-center text-sm text-zinc-500">No jobs yet.</p>;
  return (
    <>
      {/* Scrolls inside its own box on a narrow screen rather than the whole page. */}
      <div className="overflow-x-auto" role="region" aria-label={caption} tabIndex={0}>
        <table className="w-full text-left text-sm">
          <caption className="sr-only">{caption}</caption>
          <thead className="border-b border-zinc-200 text-xs uppercase tracking-wide text-zinc-500 dark:border-zinc-800">
            <tr>
              <th scope="col" className="px-5 py-2 font-medium">Job</th>
              <th scope="col" className="px-3 py-2 font-medium">Status</th>
              <th scope="col" className="px-3 py-2 font-medium">Progress</th>
              <th scope="col" className="hidden px-3 py-2 font-medium md:table-cell">Step</th>
              <th scope="col" className="hidden px-3 py-2 font-medium sm:table-cell">Started by</th>
              <th scope="col" className="px-5 py-2 font-medium">Created</th>
            </tr>
          </thead>
          <tbody className="divide-y divide-zinc-100 dark:divide-zinc-800">
            {jobs.map((job) => (
              <tr key={job.id} data-job-id={job.id} className="hover:bg-zinc-50 dark:hover:bg-zinc-800/40">
                <td className="px-5 py-3">
                  <Link href={`/jobs/${job.id}`} className="font-medium text-brand-600 hover:underline dark:text-brand-500">{job.title}</Link>
                  <p className="text-xs text-zinc-500" data-field="subject">{job.subject ?? <span className="font-mono text-zinc-400">{job.id.slice(0, 8)}</span>}</p>
                </td>
                <td className="px-3 py-3"><JobStatusBadge status={job.status} cancelRequested={job.cancelRequested} /></td>
                <td className="px-3 py-3"><JobProgress job={job} /></td>
                <td className="hidden max-w-56 truncate px-3 py-3 text-zinc-600 md:table-cell dark:text-zinc-400">{job.status === "failed" ? job.error : job.step ?? "—"}</td>
                <td className="hidden px-3 py-3 text-zinc-600 sm:table-cell dark:text-zinc-400">{job.createdBy ?? "system"}</td>
                <td className="px-5 py-3 text-zinc-500"><RelativeTime date={job.createdAt} /></td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p className="border-t border-zinc-100 px-5 py-2 text-xs text-zinc-500 md:hidden dark:border-zinc-800" data-testid="hidden-columns">
        <span className="sm:hidden">The Step and Started by columns are hidden at this width: open a job to see them.</span>
        <span className="hidden sm:inline">The Step column is hidden at this width: open a job to see it.</span>
      </p>
    </>
  );
}
