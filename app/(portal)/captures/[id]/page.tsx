import { pageId } from "@/components/shell/page-id";
import { CaptureSessionPage } from "@/components/captures/session-page";

export const metadata = { title: "Capture" };

export default async function Page({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  return <CaptureSessionPage sessionId={pageId(id)} />;
}
