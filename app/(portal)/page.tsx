import { Overview } from "@/components/shell/overview";

export const metadata = { title: "Overview" };

export default function OverviewPage() {
  return <Overview />;
}
