import { MembersSettings } from "@/components/settings/members-settings";

export const metadata = { title: "Settings · Members" };

export default function Page() {
  return <MembersSettings />;
}
