import { headers } from "next/headers";
import { redirect } from "next/navigation";
import type { ReactNode } from "react";
import { AppShell } from "@/components/shell/app-shell";
import { readSessionUserId } from "@/server/auth/session";

export const dynamic = "force-dynamic";

export default async function PortalLayout({ children }: { children: ReactNode }) {
  if (!(await readSessionUserId(await headers()))) redirect("/sign-in");
  return <AppShell>{children}</AppShell>;
}
