import { pageId } from "@/components/shell/page-id";
import { DeviceDetail } from "@/components/fleet/device-detail";

export const metadata = { title: "Device" };

export default async function Page({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  return <DeviceDetail deviceId={pageId(id)} />;
}
