import { CapturesPage } from "@/components/captures/captures-page";

export const metadata = { title: "Captures" };

export default function Page() {
  return <CapturesPage />;
}
