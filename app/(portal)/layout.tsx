import { headers } from "next/headers";
import { redirect } from "next/navigation";
import type { ReactNode } from "react";
import { AppShell } from "@/components/shell/app-shell";
import { db } from "@/server/db";
import { resolveSessionUser } from "@/server/auth/session";

export const dynamic = "force-dynamic";

export default async function PortalLayout({ children }: { children: ReactNode }) {
  // An ended session (signed out elsewhere, password changed) is sent to sign in like no session.
  if (!(await resolveSessionUser(db(), await headers()))) redirect("/sign-in");
  return <AppShell>{children}</AppShell>;
}
