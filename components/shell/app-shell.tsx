"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { usePathname } from "next/navigation";
import { signOut } from "next-auth/react";
import { useEffect, useState, type ReactNode } from "react";
import { cn } from "@/components/ui/cn";
import { Button } from "@/components/ui/button";
import { setTabOrg, useTabOrg, useTRPC } from "@/components/trpc";
import { useLiveJobs } from "@/components/jobs/use-live-jobs";
import { HealthBanner } from "./health-banner";
import { NoOrganisation } from "./no-organisation";
import { ThemeToggle } from "./theme-toggle";
import { navItems } from "./nav-items";

const nav = navItems;

function OrgSwitcher() {
  const trpc = useTRPC();
  const me = useQuery(trpc.auth.me.queryOptions());
  const switchOrg = useMutation(trpc.orgs.switch.mutationOptions());
  const [isSwitching, setSwitching] = useState(false);
  if (!me.data) return <div className="h-9" />;

  const onSwitch = (orgId: string) => {
    setTabOrg(orgId);
    setSwitching(true);
    // The server remembers the choice for new tabs; this tab names its organisation itself, so
    // it reloads either way, and every query and subscription starts over in the new one.
    switchOrg.mutate({ orgId }, { onSettled: () => window.location.assign("/") });
  };
  return (
    <label className="block">
      <span className="sr-only">Organisation</span>
      <select
        aria-label="Organisation"
        value={me.data.currentOrg?.id ?? ""}
        onChange={(e) => onSwitch(e.target.value)}
        disabled={isSwitching}
        className="h-9 w-full rounded-md border border-zinc-300 bg-white px-2 text-sm dark:border-zinc-700 dark:bg-zinc-900"
      >
        {me.data.orgs.map((o) => <option key={o.id} value={o.id}>{o.name} ({o.role})</option>)}
      </select>
    </label>
  );
}

function LiveJobs() {
  useLiveJobs();
  return null;
}

/**
 * Settles which organisation this tab acts in: the one it chose before if the user still
 * belongs to it, else the one the server falls back to (the last one chosen). True while that
 * is still being settled.
 */
function useSettleTabOrg(): boolean {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const me = useQuery(trpc.auth.me.queryOptions());
  const tabOrg = useTabOrg();
  const isTabOrgMine = tabOrg !== null && (me.data?.orgs.some((o) => o.id === tabOrg) ?? false);

  useEffect(() => {
    if (!me.data || isTabOrgMine) return;
    if (me.data.currentOrg) {
      setTabOrg(me.data.currentOrg.id);
    } else if (tabOrg) {
      // Named an organisation the user is not in (left it, or another account signed in in
      // this tab): forget everything read so far and ask again without naming one.
      setTabOrg(null);
      void queryClient.resetQueries();
    }
  }, [me.data, isTabOrgMine, tabOrg, queryClient]);

  return me.data ? (tabOrg === null ? me.data.currentOrg !== null : !isTabOrgMine) : false;
}

export function AppShell({ children }: { children: ReactNode }) {
  const trpc = useTRPC();
  const pathname = usePathname();
  const me = useQuery(trpc.auth.me.queryOptions());
  const isSettlingOrg = useSettleTabOrg();
  const [isMenuOpen, setMenuOpen] = useState(false);
  const isActive = (href: string) => (href === "/" ? pathname === "/" : pathname.startsWith(href));

  const sidebar = (
    <nav aria-label="Main" className="flex h-full flex-col gap-6 p-4">
      <Link href="/" className="px-2 text-lg font-semibold tracking-tight">Gantry</Link>
      <OrgSwitcher />
      <ul className="space-y-1">
        {nav.map((item) => (
          <li key={item.href}>
            <Link
              href={item.href}
              onClick={() => setMenuOpen(false)}
              aria-current={isActive(item.href) ? "page" : undefined}
              className={cn("block rounded-md px-3 py-2 text-sm font-medium", isActive(item.href) ? "bg-zinc-200/70 text-zinc-900 dark:bg-zinc-800 dark:text-white" : "text-zinc-600 hover:bg-zinc-100 dark:text-zinc-400 dark:hover:bg-zinc-900")}
            >
              {item.label}
            </Link>
          </li>
        ))}
      </ul>
      <div className="mt-auto space-y-3 border-t border-zinc-200 pt-4 dark:border-zinc-800">
        {me.data && (
          <div className="px-2 text-sm">
            <p className="font-medium">{me.data.user.name}</p>
            <p className="truncate text-xs text-zinc-500">{me.data.user.email}</p>
          </div>
        )}
        <div className="flex items-center justify-between px-2">
          <ThemeToggle />
          <Button variant="ghost" size="sm" className="whitespace-nowrap" onClick={() => signOut({ callbackUrl: "/sign-in" })}>Sign out</Button>
        </div>
      </div>
    </nav>
  );

  return (
    <div className="min-h-screen md:flex">
      <aside className="hidden w-64 shrink-0 border-r border-zinc-200 bg-white md:block dark:border-zinc-800 dark:bg-zinc-950">{sidebar}</aside>
      <div className="flex items-center justify-between border-b border-zinc-200 bg-white px-4 py-3 md:hidden dark:border-zinc-800 dark:bg-zinc-950">
        <span className="font-semibold">Gantry</span>
        <Button variant="ghost" size="sm" aria-expanded={isMenuOpen} aria-controls="mobile-nav" onClick={() => setMenuOpen((v) => !v)}>Menu</Button>
      </div>
      {isMenuOpen && <div id="mobile-nav" className="border-b border-zinc-200 bg-white md:hidden dark:border-zinc-800 dark:bg-zinc-950">{sidebar}</div>}
      <div className="min-w-0 flex-1">
        <HealthBanner />
        <main className="mx-auto max-w-6xl px-4 py-8 md:px-8">
          {me.isLoading || isSettlingOrg ? <p className="text-sm text-zinc-500">Loading…</p> : me.data && !me.data.currentOrg ? <NoOrganisation /> : (
            <>
              <LiveJobs />
              {children}
            </>
          )}
        </main>
      </div>
    </div>
  );
}
