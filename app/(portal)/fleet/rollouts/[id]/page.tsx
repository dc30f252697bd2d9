import { pageId } from "@/components/shell/page-id";
import { RolloutDetail } from "@/components/fleet/rollout-detail";

export const metadata = { title: "Rollout" };

export default async function Page({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  return <RolloutDetail deploymentId={pageId(id)} />;
}
