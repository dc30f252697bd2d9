import { EndpointsPage } from "@/components/endpoints/endpoints-page";

export const metadata = { title: "Endpoints" };

export default function Page() {
  return <EndpointsPage />;
}
