import { TokensSettings } from "@/components/settings/tokens-settings";

export const metadata = { title: "Settings · Tokens" };

export default function Page() {
  return <TokensSettings />;
}
