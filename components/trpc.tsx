"use client";

import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink, TRPCClientError } from "@trpc/client";
import { createTRPCContext } from "@trpc/tanstack-react-query";
import { useState, useSyncExternalStore, type ReactNode } from "react";
import superjson from "superjson";
import type { AppRouter } from "@/server/api/root";

export const { TRPCProvider, useTRPC, useTRPCClient } = createTRPCContext<AppRouter>();

// The organisation this tab acts in. Each tab keeps its own (sessionStorage is per tab and
// survives a reload) and names it on every request, so two tabs can work in two organisations.
const TAB_ORG_KEY = "gantry-org";
let tabOrgId: string | null | undefined; // undefined: not read from storage yet
const tabOrgListeners = new Set<() => void>();

export function getTabOrg(): string | null {
  if (tabOrgId === undefined) {
    if (typeof window === "undefined") return null; // the server renders for everyone: no tab
    try {
      tabOrgId = window.sessionStorage.getItem(TAB_ORG_KEY);
    } catch {
      tabOrgId = null; // storage disabled: the tab's choice lasts until a reload
    }
  }
  return tabOrgId;
}

export function setTabOrg(orgId: string | null) {
  if (typeof window === "undefined" || orgId === getTabOrg()) return;
  tabOrgId = orgId;
  try {
    if (orgId) window.sessionStorage.setItem(TAB_ORG_KEY, orgId);
    else window.sessionStorage.removeItem(TAB_ORG_KEY);
  } catch {
    // storage disabled: kept in memory only
  }
  for (const listener of tabOrgListeners) listener();
}

function subscribeTabOrg(listener: () => void) {
  tabOrgListeners.add(listener);
  return () => void tabOrgListeners.delete(listener);
}

/** The tab's organisation, re-rendering when it changes; null on the server and before one is chosen. */
export function useTabOrg(): string | null {
  return useSyncExternalStore(subscribeTabOrg, getTabOrg, () => null);
}

function makeQueryClient() {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 5_000,
        retry: (count, error) => !(error instanceof TRPCClientError && ["UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "BAD_REQUEST"].includes(error.data?.code)) && count < 2,
      },
    },
  });
}

const orgHeaders = (orgId: string | null): Record<string, string> => (orgId ? { "x-gantry-org": orgId } : {});
const orgParams = (orgId: string | null) => (orgId ? { orgId } : null);

export function ApiProvider({ children }: { children: ReactNode }) {
  const [queryClient] = useState(makeQueryClient);
  const [trpcClient] = useState(() =>
    createTRPCClient<AppRouter>({
      links: [
        splitLink({
          condition: (op) => op.type === "subscription",
          // An EventSource cannot send headers: the organisation goes in the URL instead.
          true: httpSubscriptionLink({ url: "/api/trpc", transformer: superjson, connectionParams: () => orgParams(getTabOrg()) }),
          false: httpBatchLink({ url: "/api/trpc", transformer: superjson, headers: () => orgHeaders(getTabOrg()) }),
        }),
      ],
    }),
  );
  return (
    <QueryClientProvider client={queryClient}>
      <TRPCProvider trpcClient={trpcClient} queryClient={queryClient}>
        {children}
      </TRPCProvider>
    </QueryClientProvider>
  );
}

/**
 * A message a person can act on, from any error the API returned. A form passes the labels its
 * fields show, by input path ("strategy.canary" → "Canary devices"), so a field that does not
 * fit is named as the person sees it.
 */
export function errorMessage(error: unknown, labels: Record<string, string> = {}): string {
  if (error instanceof TRPCClientError) {
    const fields = (error.data as { fieldErrors?: Array<{ path: string; message: string }> } | undefined)?.fieldErrors;
    if (fields?.length) return fields.map((f) => (f.path ? `${labels[f.path] ?? f.path}: ${f.message}` : f.message)).join("; ");
    return error.message;
  }
  return error instanceof Error ? error.message : "Something went wrong";
}
