import { AccountSettings } from "@/components/settings/account-settings";

export const metadata = { title: "Settings · Account" };

export default function Page() {
  return <AccountSettings />;
}
