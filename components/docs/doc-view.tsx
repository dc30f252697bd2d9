import { Card, CardBody } from "@/components/ui/card";
import { renderDoc } from "./render-doc";

/** A guide, rendered: headings, paragraphs, lists, tables and code as the docs folder has them. */
export function DocView({ markdown }: { markdown: string }) {
  return (
    <Card>
      <CardBody>
        <article
          data-testid="guide"
          className="max-w-none text-sm leading-relaxed text-zinc-800 dark:text-zinc-200 [&_a]:text-brand-600 [&_a]:underline [&_code]:rounded [&_code]:bg-zinc-100 [&_code]:px-1 [&_code]:font-mono [&_code]:text-xs dark:[&_code]:bg-zinc-800 [&_h1]:mb-4 [&_h1]:text-2xl [&_h1]:font-semibold [&_h2]:mb-3 [&_h2]:mt-8 [&_h2]:text-lg [&_h2]:font-semibold [&_h3]:mb-2 [&_h3]:mt-6 [&_h3]:font-semibold [&_li]:my-1 [&_ol]:my-3 [&_ol]:list-decimal [&_ol]:pl-6 [&_p]:my-3 [&_pre]:my-3 [&_pre]:overflow-x-auto [&_pre]:rounded-md [&_pre]:bg-zinc-950 [&_pre]:p-4 [&_pre]:text-zinc-100 [&_pre_code]:bg-transparent [&_pre_code]:p-0 [&_pre_code]:text-zinc-100 [&_table]:my-4 [&_table]:block [&_table]:overflow-x-auto [&_td]:border [&_td]:border-zinc-200 [&_td]:px-2 [&_td]:py-1 [&_td]:align-top dark:[&_td]:border-zinc-700 [&_th]:border [&_th]:border-zinc-200 [&_th]:bg-zinc-50 [&_th]:px-2 [&_th]:py-1 [&_th]:text-left dark:[&_th]:border-zinc-700 dark:[&_th]:bg-zinc-900 [&_ul]:my-3 [&_ul]:list-disc [&_ul]:pl-6"
          dangerouslySetInnerHTML={{ __html: renderDoc(markdown) }}
        />
      </CardBody>
    </Card>
  );
}
