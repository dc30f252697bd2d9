import Link from "next/link";
import { notFound } from "next/navigation";
import { DocView } from "@/components/docs/doc-view";
import { isAppError } from "@/server/errors";
import { readDoc } from "@/server/docs/docs";

async function load(name: string) {
  try {
    return await readDoc(name);
  } catch (error) {
    if (isAppError(error) && error.code === "NOT_FOUND") notFound();
    throw error;
  }
}

export async function generateMetadata({ params }: { params: Promise<{ name: string }> }) {
  const { name } = await params;
  const doc = await readDoc(name).catch(() => null);
  return { title: doc ? doc.title : "Guide" };
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
