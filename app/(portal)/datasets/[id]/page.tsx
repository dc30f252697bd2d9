import { pageId } from "@/components/shell/page-id";
import { DatasetDetail } from "@/components/datasets/dataset-detail";

export const metadata = { title: "Dataset" };

export default async function Page({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  return <DatasetDetail datasetId={pageId(id)} />;
}
