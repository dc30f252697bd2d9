"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useRouter } from "next/navigation";
import { Button } from "@/components/ui/button";
import { errorMessage, useTRPC } from "@/components/trpc";
import { hasRole } from "@/server/auth/roles";

/** Starts the self-test job: checks what Gantry needs, one pass or fail line each in its log. */
export function StartSelftestButton({ openDetail = false }: { openDetail?: boolean }) {
  const trpc = useTRPC();
  const router = useRouter();
  const queryClient = useQueryClient();
  const me = useQuery(trpc.auth.me.queryOptions());
  const start = useMutation(
    trpc.system.startSelftest.mutationOptions({
      onSuccess: ({ jobId }) => {
        void queryClient.invalidateQueries({ queryKey: trpc.jobs.list.pathKey() });
        if (openDetail) router.push(`/jobs/${jobId}`);
      },
    }),
  );
  const role = me.data?.currentOrg?.role;
  if (!role || !hasRole(role, "operator")) return null;
  return (
    <div className="flex flex-col items-end gap-1">
      <Button onClick={() => start.mutate({})} disabled={start.isPending}>
        {start.isPending ? "Starting…" : "Run self-test"}
      </Button>
      {start.error && <p role="alert" className="text-xs text-red-600">{errorMessage(start.error)}</p>}
    </div>
  );
}
