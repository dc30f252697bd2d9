import { NewRunForm } from "@/components/training/new-run-form";

export const metadata = { title: "New training run" };

export default async function Page({ searchParams }: { searchParams: Promise<{ dataset?: string }> }) {
  const { dataset } = await searchParams;
  return <NewRunForm datasetId={typeof dataset === "string" ? dataset : undefined} />;
}
