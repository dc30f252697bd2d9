"use client";

import { useQueryClient } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import { useEffect, useRef, useSyncExternalStore } from "react";
import { useTRPC } from "@/components/trpc";
import type { JobDto, JobEventDto } from "@/server/jobs/jobs.schemas";

/** One read of the job list. */
type JobPage = { items: JobDto[]; nextCursor: string | null };

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

type LiveStatus = "idle" | "connecting" | "pending" | "error";

// One EventSource per tab: browsers allow six HTTP/1.1 connections per host, so views that
// want live events listen here instead of opening subscriptions of their own.
const jobEventListeners = new Set<(event: JobEventDto) => void>();
let liveStatus: LiveStatus = "idle";
const statusListeners = new Set<() => void>();

/** Hears every job event of the organisation this tab acts in; returns the unsubscribe. */
export function onLiveJobEvent(listener: (event: JobEventDto) => void): () => void {
  jobEventListeners.add(listener);
  return () => void jobEventListeners.delete(listener);
}

function setLiveStatus(status: LiveStatus) {
  if (status === liveStatus) return;
  liveStatus = status;
  for (const listener of statusListeners) listener();
}

function subscribeLiveStatus(listener: () => void) {
  statusListeners.add(listener);
  return () => void statusListeners.delete(listener);
}

/** The org subscription's state: "pending" while it follows live, "connecting", "error". */
export function useLiveStatus(): LiveStatus {
  return useSyncExternalStore(subscribeLiveStatus, () => liveStatus, () => "idle" as const);
}

/**
 * The tab's one subscription to the organisation's job events; every cached job list and job
 * is patched in place, so progress bars move without refetching, and every event is passed on
 * to `onLiveJobEvent` listeners. Mount it once, in the shell.
 */
export function useLiveJobs() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const refetchTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const changedJobs = useRef(new Set<string>());

  // A read that started before a status change can answer after its event was applied and
  // undo it; reading again after the change (in-flight reads are cancelled) settles it.
  const refetchLists = (jobId: string) => {
    changedJobs.current.add(jobId);
    if (refetchTimer.current) return;
    refetchTimer.current = setTimeout(() => {
      refetchTimer.current = null;
      const jobIds = [...changedJobs.current];
      changedJobs.current.clear();
      for (const id of jobIds) void queryClient.invalidateQueries({ queryKey: trpc.jobs.get.queryKey({ jobId: id }) });
      void queryClient.invalidateQueries({ queryKey: trpc.jobs.list.pathKey() });
      void queryClient.invalidateQueries({ queryKey: trpc.system.overview.queryKey() });
    }, 300);
  };

  const subscription = useSubscription(
    trpc.jobs.onOrgEvents.subscriptionOptions(undefined, {
      onData: ({ data: event }) => {
        let isKnown = false;
        const applyToPage = (page: JobPage): JobPage => ({
          ...page,
          items: page.items.map((j) => {
            if (j.id !== event.jobId) return j;
            isKnown = true;
            return applyEvent(j, event);
          }),
        });
        // A list read once (the Overview's) or page by page (the Jobs page).
        queryClient.setQueriesData<JobPage | { pages: JobPage[]; pageParams: unknown[] }>({ queryKey: trpc.jobs.list.pathKey() }, (old) => {
          if (!old) return old;
          return "pages" in old ? { ...old, pages: old.pages.map(applyToPage) } : applyToPage(old);
        });
        queryClient.setQueryData(trpc.jobs.get.queryKey({ jobId: event.jobId }), (old: JobDto | undefined) => (old ? applyEvent(old, event) : old));
        // A new job, or one that moved between filters: the lists are read again, debounced.
        if (!isKnown || event.status) refetchLists(event.jobId);
        for (const listener of jobEventListeners) listener(event);
      },
    }),
  );
  useEffect(() => {
    setLiveStatus(subscription.status);
    return () => setLiveStatus("idle");
  }, [subscription.status]);
  return subscription;
}
