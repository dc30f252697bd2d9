import { TrainingPage } from "@/components/training/training-page";

export const metadata = { title: "Training" };

export default function Page() {
  return <TrainingPage />;
}
