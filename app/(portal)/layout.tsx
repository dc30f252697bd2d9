import { headers } from "next/headers";
import { redirect } from "next/navigation";
import type { ReactNode } from "react";
import { PAGE_HEADER, signInPath } from "@/components/auth/sign-in-path";
import { AppShell } from "@/components/shell/app-shell";
import { db } from "@/server/db";
import { resolveSessionUser } from "@/server/auth/session";

export const dynamic = "force-dynamic";

export default async function PortalLayout({ children }: { children: ReactNode }) {
  // An ended session (signed out elsewhere, password changed) is sent to sign in like no session,
  // and comes back to the page it asked for.
  const request = await headers();
  if (!(await resolveSessionUser(db(), request))) redirect(signInPath(request.get(PAGE_HEADER)));
  return <AppShell>{children}</AppShell>;
}
