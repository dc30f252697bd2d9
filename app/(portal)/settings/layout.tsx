import type { ReactNode } from "react";
import { PageHeader } from "@/components/ui/page-header";
import { SettingsTabs } from "@/components/settings/settings-tabs";

export default function SettingsLayout({ children }: { children: ReactNode }) {
  return (
    <>
      <PageHeader title="Settings" description="Members and roles, API tokens and the API reference, the audit log, this instance and its health, and your own account." />
      <SettingsTabs />
      {children}
    </>
  );
}
