/**
 * Runs `work` over `items`, at most `limit` at a time; resolves to the results in the items'
 * order. The first failure aborts the others (through the signal handed to `work`) and is thrown
 * once every one has stopped, so nothing is left running or half-cleaned behind it. An abort of
 * `signal` stops taking new items and reaches running ones the same way.
 */
export async function inParallel<T, R>(items: T[], limit: number, signal: AbortSignal | undefined, work: (item: T, index: number, signal: AbortSignal) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  let next = 0;
  let failure: { error: unknown } | null = null;
  try {
    await Promise.all(
      Array.from({ length: Math.min(Math.max(1, limit), items.length) }, async () => {
        while (next < items.length && !failure) {
          const i = next++;
          try {
            stop.signal.throwIfAborted();
            results[i] = await work(items[i], i, stop.signal);
          } catch (error) {
            failure ??= { error };
            stop.abort(error);
          }
        }
      }),
    );
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  if (failure) throw (failure as { error: unknown }).error;
  return results;
}
