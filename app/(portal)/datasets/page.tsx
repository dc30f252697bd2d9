import { DatasetsPage } from "@/components/datasets/datasets-page";

export const metadata = { title: "Datasets" };

export default async function Page({ searchParams }: { searchParams: Promise<{ deleted?: string; left?: string }> }) {
  const { deleted, left } = await searchParams;
  return <DatasetsPage deleted={typeof deleted === "string" && deleted ? { repoId: deleted.slice(0, 200), left: Number(left) || 0 } : undefined} />;
}
