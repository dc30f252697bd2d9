import Link from "next/link";
import { notFound } from "next/navigation";
import { cache } from "react";
import { DocView } from "@/components/docs/doc-view";
import { isAppError } from "@/server/errors";
import { readDoc } from "@/server/docs/docs";

/** The guide, read once per request for both the title and the page. */
const load = cache(async (name: string) => {
  try {
    return await readDoc(name);
  } catch (error) {
    if (isAppError(error) && error.code === "NOT_FOUND") notFound();
    throw error;
  }
});

export async function generateMetadata({ params }: { params: Promise<{ name: string }> }) {
  const { name } = await params;
  return { title: (await load(name)).title };
}

export default async function Page({ params }: { params: Promise<{ name: string }> }) {
  const doc = await load((await params).name);
  return (
    <>
      <nav aria-label="Breadcrumb" className="mb-2 text-sm text-zinc-500"><Link href="/docs" className="hover:underline">Guides</Link> / {doc.name}</nav>
      <DocView markdown={doc.markdown} />
    </>
  );
}
