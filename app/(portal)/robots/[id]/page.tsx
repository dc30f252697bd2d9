import { pageId } from "@/components/shell/page-id";
import { RobotSetupPage } from "@/components/hardware/robot-setup";

export const metadata = { title: "Set up an arm" };

export default async function Page({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  return <RobotSetupPage robotId={pageId(id)} />;
}
