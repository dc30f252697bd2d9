import { NewRollout } from "@/components/fleet/new-rollout";

export const metadata = { title: "New rollout" };

export default function Page() {
  return <NewRollout />;
}
