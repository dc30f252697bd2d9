import { TargetsPage } from "@/components/training/targets-page";

export const metadata = { title: "Training targets" };

export default function Page() {
  return <TargetsPage />;
}
