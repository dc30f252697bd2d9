import { pageId } from "@/components/shell/page-id";
import { ModelDetail } from "@/components/models/model-detail";

export const metadata = { title: "Model" };

export default async function Page({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  return <ModelDetail modelId={pageId(id)} />;
}
