"use client";

import { useQueryClient } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import { useRef } from "react";
import { useTRPC } from "@/components/trpc";
import type { JobDto, JobEventDto } from "@/server/jobs/jobs.schemas";

function applyEvent(job: JobDto, e: JobEventDto): JobDto {
  return {
    ...job,
    progress: e.progress ?? job.progress,
    step: e.step ?? job.step,
    status: e.status ?? job.status,
    error: e.status === "failed" ? e.message.replace(/^Failed: /, "") : e.status ? null : job.error,
    cancelRequested: job.cancelRequested || /^Cancel requested/.test(e.message),
  };
}

/**
 * One subscription per page to the organisation's job events; every cached job list and job
 * is patched in place, so progress bars move without refetching.
 */
export function useLiveJobs() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const refetchTimer = useRef<ReturnType<typeof setTimeout> | null>(null);

  const refetchLists = () => {
    if (refetchTimer.current) return;
    refetchTimer.current = setTimeout(() => {
      refetchTimer.current = null;
      void queryClient.invalidateQueries({ queryKey: trpc.jobs.list.pathKey() });
      void queryClient.invalidateQueries({ queryKey: trpc.system.overview.queryKey() });
    }, 300);
  };

  return useSubscription(
    trpc.jobs.onOrgEvents.subscriptionOptions(undefined, {
      onData: ({ data: event }) => {
        let isKnown = false;
        queryClient.setQueriesData<{ items: JobDto[]; nextCursor: string | null }>({ queryKey: trpc.jobs.list.pathKey() }, (old) => {
          if (!old) return old;
          const items = old.items.map((j) => {
            if (j.id !== event.jobId) return j;
            isKnown = true;
            return applyEvent(j, event);
          });
          return { ...old, items };
        });
        queryClient.setQueryData(trpc.jobs.get.queryKey({ jobId: event.jobId }), (old: JobDto | undefined) => (old ? applyEvent(old, event) : old));
        // A new job, or one that moved between filters: the lists are read again, debounced.
        if (!isKnown || event.status) refetchLists();
      },
    }),
  );
}
