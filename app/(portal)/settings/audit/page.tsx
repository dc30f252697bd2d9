import { AuditSettings } from "@/components/settings/audit-settings";

export const metadata = { title: "Settings · Audit" };

export default function Page() {
  return <AuditSettings />;
}
