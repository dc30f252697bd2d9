import { pageId } from "@/components/shell/page-id";
import { EndpointDetail } from "@/components/endpoints/endpoint-detail";

export const metadata = { title: "Endpoint" };

export default async function Page({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  return <EndpointDetail endpointId={pageId(id)} />;
}
