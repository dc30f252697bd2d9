"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useRouter } from "next/navigation";
import { useId, useRef, useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { TextField } from "@/components/ui/field";
import { errorMessage, useTRPC } from "@/components/trpc";

/**
 * "Delete dataset" and its confirmation: the repo id must be typed, as the deletion cannot be
 * undone. On success it goes back to the datasets list, which says what was deleted.
 */
export function DeleteDatasetButton({ datasetId, repoId, episodes, isBusy }: { datasetId: string; repoId: string; episodes: number; isBusy: boolean }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const router = useRouter();
  const dialog = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const [typed, setTyped] = useState("");
  const remove = useMutation(
    trpc.datasets.delete.mutationOptions({
      onSuccess: (deleted) => {
        queryClient.removeQueries({ queryKey: trpc.datasets.get.queryKey({ datasetId }) });
        void queryClient.invalidateQueries({ queryKey: trpc.datasets.list.queryKey() });
        const notice = new URLSearchParams({ deleted: deleted.repoId });
        if (deleted.left.length) notice.set("left", String(deleted.left.length));
        router.push(`/datasets?${notice}`);
      },
    }),
  );
  const isTyped = typed.trim() === repoId;

  const open = () => {
    setTyped("");
    remove.reset();
    dialog.current?.showModal();
  };
  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    if (isTyped && !remove.isPending) remove.mutate({ datasetId });
  };

  return (
    <>
      <Button variant="danger" onClick={open}>Delete dataset</Button>
      <dialog
        ref={dialog}
        aria-labelledby={titleId}
        className="m-auto w-full max-w-lg rounded-lg border border-zinc-200 bg-white p-0 text-zinc-900 shadow-xl backdrop:bg-black/40 dark:border-zinc-800 dark:bg-zinc-900 dark:text-zinc-100"
      >
        <form onSubmit={onSubmit} className="space-y-4 px-6 py-5">
          <h2 id={titleId} className="text-base font-semibold">Delete {repoId}?</h2>
          <p className="text-sm text-zinc-600 dark:text-zinc-400">
            This removes its {episodes} episode{episodes === 1 ? "" : "s"}, its LeRobot folder with every build, and any raw episodes still waiting to be
            encoded. It cannot be undone: export it first if it may be needed again.
          </p>
          {isBusy && <Alert tone="amber">Episodes are still encoding or the import is running: the deletion is refused until they finish or are cancelled on the Jobs page.</Alert>}
          <TextField label={`Type ${repoId} to confirm`} value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" spellCheck={false} autoFocus />
          {remove.error && <Alert>{errorMessage(remove.error)}</Alert>}
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => dialog.current?.close()}>Cancel</Button>
            <Button type="submit" variant="danger" disabled={!isTyped || remove.isPending}>{remove.isPending ? "Deleting…" : "Delete dataset"}</Button>
          </div>
        </form>
      </dialog>
    </>
  );
}
