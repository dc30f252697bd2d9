"use client";

import { useQuery } from "@tanstack/react-query";
import { useTRPC } from "@/components/trpc";
import { hasRole, type Role } from "@/server/auth/roles";

/** The signed-in user's role in the current organisation, and a check against a minimum. */
export function useRole() {
  const trpc = useTRPC();
  const me = useQuery(trpc.auth.me.queryOptions());
  const role = me.data?.currentOrg?.role;
  return { role, userId: me.data?.user.id, orgId: me.data?.currentOrg?.id, can: (min: Role) => (role ? hasRole(role, min) : false) };
}
