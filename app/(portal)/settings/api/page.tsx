import { ApiReference, type OpenApiDocument } from "@/components/settings/api-reference";
import { buildOpenApiDocument } from "@/server/api/openapi/document";

export const metadata = { title: "Settings · API reference" };

export default function Page() {
  return <ApiReference doc={buildOpenApiDocument() as unknown as OpenApiDocument} />;
}
