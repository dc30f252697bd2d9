import { Marked, type Tokens } from "marked";
import { docHref } from "@/server/docs/docs";

// A guide's Markdown as HTML for its portal page. The guides are the repository's own files,
// not anyone's input. Links to other guides lead to their pages; a link to a file beside the
// guides (an example script) is shown as its text, since the portal does not serve it. Headings
// get ids, so a link to `guide.md#section` lands on it.

const slug = (text: string) => text.toLowerCase().replace(/<[^>]+>/g, "").replace(/[^\w\s-]/g, "").trim().replace(/\s+/g, "-");
const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");

const marked = new Marked({
  gfm: true,
  renderer: {
    link(this: { parser: { parseInline: (tokens: Tokens.Generic[]) => string } }, { href, title, tokens }: Tokens.Link) {
      const text = this.parser.parseInline(tokens);
      const to = docHref(href);
      if (to === null) return `<code>${text}</code>`;
      const outside = /^https?:/.test(to);
      return `<a href="${escape(to)}"${title ? ` title="${escape(title)}"` : ""}${outside ? ' rel="noreferrer" target="_blank"' : ""}>${text}</a>`;
    },
    heading(this: { parser: { parseInline: (tokens: Tokens.Generic[]) => string } }, { tokens, depth }: Tokens.Heading) {
      const text = this.parser.parseInline(tokens);
      return `<h${depth} id="${slug(text)}">${text}</h${depth}>\n`;
    },
  },
});

export function renderDoc(markdown: string): string {
  return marked.parse(markdown, { async: false });
}
