import { RobotsPage } from "@/components/hardware/robots-page";

export const metadata = { title: "Robots" };

export default function Page() {
  return <RobotsPage />;
}
