import { EndpointWizard } from "@/components/endpoints/endpoint-wizard";

export const metadata = { title: "New endpoint" };

export default async function Page({ searchParams }: { searchParams: Promise<{ model?: string; version?: string }> }) {
  const { model, version } = await searchParams;
  return <EndpointWizard initialModelId={model ?? null} initialVersionId={version ?? null} />;
}
