import Link from "next/link";
import { Card } from "@/components/ui/card";
import { PageHeader } from "@/components/ui/page-header";
import { listDocs } from "@/server/docs/docs";

export const metadata = { title: "Guides" };

export default async function Page() {
  const docs = await listDocs();
  return (
    <>
      <PageHeader title="Guides" description="How each part of Gantry works and is run: the same guides as the docs folder of the repository." />
      <Card>
        <ul className="divide-y divide-zinc-100 dark:divide-zinc-800" aria-label="Guides">
          {docs.map((d) => (
            <li key={d.name} className="px-5 py-3">
              <Link href={`/docs/${d.name}`} className="font-medium text-brand-600 hover:underline dark:text-brand-500">{d.title}</Link>
              <span className="ml-2 font-mono text-xs text-zinc-400">docs/{d.name}.md</span>
            </li>
          ))}
        </ul>
      </Card>
    </>
  );
}
