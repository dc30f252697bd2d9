import { HealthDashboard } from "@/components/settings/health-dashboard";

export const metadata = { title: "Settings · Health" };

export default function Page() {
  return <HealthDashboard />;
}
