import { AgentsPage } from "@/components/hardware/agents-page";

export const metadata = { title: "Agents" };

export default function Page() {
  return <AgentsPage />;
}
