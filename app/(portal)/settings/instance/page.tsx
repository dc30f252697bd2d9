import { InstanceSettings } from "@/components/settings/instance-settings";

export const metadata = { title: "Settings · Instance" };

export default function Page() {
  return <InstanceSettings />;
}
