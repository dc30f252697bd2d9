"use client";

import Link from "next/link";
import { usePathname } from "next/navigation";
import { cn } from "@/components/ui/cn";

const tabs = [
  { href: "/settings/members", label: "Members" },
  { href: "/settings/tokens", label: "API tokens" },
  { href: "/settings/api", label: "API reference" },
  { href: "/settings/audit", label: "Audit log" },
  { href: "/settings/instance", label: "Instance" },
  { href: "/settings/health", label: "Health" },
  { href: "/settings/account", label: "Your account" },
];

export function SettingsTabs() {
  const pathname = usePathname();
  return (
    <nav aria-label="Settings" className="mb-6 flex gap-1 overflow-x-auto border-b border-zinc-200 dark:border-zinc-800">
      {tabs.map((t) => {
        const isActive = pathname.startsWith(t.href);
        return (
          <Link key={t.href} href={t.href} aria-current={isActive ? "page" : undefined} className={cn("-mb-px whitespace-nowrap border-b-2 px-3 py-2 text-sm font-medium", isActive ? "border-brand-600 text-zinc-900 dark:text-white" : "border-transparent text-zinc-500 hover:text-zinc-800 dark:hover:text-zinc-200")}>
            {t.label}
          </Link>
        );
      })}
    </nav>
  );
}
