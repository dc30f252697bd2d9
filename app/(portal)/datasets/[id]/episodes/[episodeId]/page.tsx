import { pageId } from "@/components/shell/page-id";
import { EpisodeView } from "@/components/datasets/episode-view";

export const metadata = { title: "Episode" };

export default async function Page({ params }: { params: Promise<{ id: string; episodeId: string }> }) {
  const { id, episodeId } = await params;
  return <EpisodeView datasetId={pageId(id)} episodeId={pageId(episodeId)} />;
}
