"use client";

import { useQuery } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { useTRPC } from "@/components/trpc";
import type { JobEventDto } from "@/server/jobs/jobs.schemas";
import { onLiveJobEvent } from "./use-live-jobs";

/** The seq of the first event that does not follow the one before it, starting after `lastSeq`. */
function firstSeqAfterGap(lastSeq: number, sortedEvents: JobEventDto[]): number | null {
  let previous = lastSeq;
  for (const e of sortedEvents) {
    if (e.seq > previous + 1) return e.seq;
    previous = e.seq;
  }
  return null;
}

/**
 * One job and its whole event log, followed live: the log is read once and then followed
 * through the shell's organisation subscription. Listening starts on mount, while the
 * history loads, so no event falls between the two; a hole in the seqs reads the history again.
 */
export function useJobLog(jobId: string) {
  const trpc = useTRPC();
  const job = useQuery(trpc.jobs.get.queryOptions({ jobId }));
  // Read on every visit: the organisation stream does not replay what happened while this page was closed.
  const history = useQuery({ ...trpc.jobs.events.queryOptions({ jobId }), staleTime: Infinity, refetchOnMount: "always" });
  const [live, setLive] = useState<JobEventDto[]>([]);
  const refetchedForSeq = useRef(0);

  useEffect(() => {
    refetchedForSeq.current = 0;
    setLive([]);
    return onLiveJobEvent((event) => {
      if (event.jobId !== jobId) return;
      setLive((prev) => (prev.some((e) => e.jobId === jobId && e.seq === event.seq) ? prev : [...prev, event]));
    });
  }, [jobId]);

  // A job's seqs run 1, 2, 3, ... and the history is complete up to its last one.
  const historyEvents = history.data ?? [];
  const historyLastSeq = historyEvents.reduce((max, e) => Math.max(max, e.seq), 0);
  const newer = live.filter((e) => e.jobId === jobId && e.seq > historyLastSeq).sort((a, b) => a.seq - b.seq);
  const events = [...historyEvents, ...newer];
  // Events went by before listening started (or while the stream was away): read the history again.
  const gapSeq = history.isSuccess ? firstSeqAfterGap(historyLastSeq, newer) : null;
  const { isFetching: isHistoryFetching, refetch: refetchHistory } = history;
  useEffect(() => {
    // Once per hole: a history cut short by its size limit would otherwise be read in a loop.
    if (gapSeq === null || isHistoryFetching || gapSeq <= refetchedForSeq.current) return;
    refetchedForSeq.current = gapSeq;
    void refetchHistory();
  }, [gapSeq, isHistoryFetching, refetchHistory]);

  return { job, events, isHistoryLoading: history.isPending };
}
