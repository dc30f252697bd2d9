import { ApiReference, type OpenApiDocument } from "@/components/settings/api-reference";
import { openApiDocument } from "@/server/api/openapi/document";

export const metadata = { title: "Settings · API reference" };

export default function Page() {
  return <ApiReference doc={openApiDocument() as unknown as OpenApiDocument} />;
}
