import { notFound } from "next/navigation";
import { RobotSetupPage } from "@/components/hardware/robot-setup";

export const metadata = { title: "Set up an arm" };

export default async function Page({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) notFound();
  return <RobotSetupPage robotId={id} />;
}
