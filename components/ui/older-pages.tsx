"use client";

import { Button } from "./button";

/**
 * Under a list read page by page, newest first: how many it shows, whether that is all there
 * are, and a button for the page before the oldest shown.
 */
export function OlderPages({ shown, noun, page, isFiltered, query }: {
  shown: number;
  /** The thing listed, one and many: ["job", "jobs"]. */
  noun: [string, string];
  page: number;
  isFiltered: boolean;
  query: { hasNextPage: boolean; isFetchingNextPage: boolean; fetchNextPage: () => Promise<unknown> };
}) {
  const filtered = isFiltered ? " matching the filters" : "";
  return (
    <div className="mt-3 flex items-center gap-3 text-sm text-zinc-500">
      <span>{query.hasNextPage ? `The newest ${shown} ${noun[1]}${filtered}.` : `${shown} ${shown === 1 ? noun[0] : noun[1]}${filtered}, all there are.`}</span>
      {query.hasNextPage && (
        <Button size="sm" variant="secondary" disabled={query.isFetchingNextPage} onClick={() => void query.fetchNextPage()}>
          {query.isFetchingNextPage ? "Loading…" : `Show ${page} older`}
        </Button>
      )}
    </div>
  );
}
