import { ModelsPage } from "@/components/models/models-page";

export const metadata = { title: "Models" };

export default function Page() {
  return <ModelsPage />;
}
