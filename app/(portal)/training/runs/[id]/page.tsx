import { pageId } from "@/components/shell/page-id";
import { RunPage } from "@/components/training/run-page";

export const metadata = { title: "Training run" };

export default async function Page({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  return <RunPage runId={pageId(id)} />;
}
