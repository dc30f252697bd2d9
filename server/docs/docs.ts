import fs from "node:fs/promises";
import path from "node:path";
import { AppError } from "../errors";

// The guides in docs/, for reading in the portal: the same files the repository holds, found by
// name among the ones there (a name from an address never becomes a path of its own).

const DOCS_DIR = path.resolve(process.cwd(), "docs");
const NAME = /^[a-z][a-z0-9-]*$/;

export interface DocSummary {
  name: string;
  title: string;
}

/** The guides' names: their file names without `.md`. */
async function guideNames(): Promise<string[]> {
  return (await fs.readdir(DOCS_DIR).catch(() => [])).filter((f) => f.endsWith(".md") && NAME.test(f.slice(0, -3))).map((f) => f.slice(0, -3)).sort();
}

/** Every guide: its name and its first heading. */
export async function listDocs(): Promise<DocSummary[]> {
  return Promise.all((await guideNames()).map(async (name) => ({ name, title: titleOf(await fs.readFile(path.join(DOCS_DIR, `${name}.md`), "utf8")) ?? name })));
}

/** One guide's Markdown; NOT_FOUND for a name that is not one of them. Reads that guide alone. */
export async function readDoc(name: string): Promise<{ name: string; title: string; markdown: string }> {
  if (!(await guideNames()).includes(name)) throw new AppError("NOT_FOUND", `There is no guide called ${name}`);
  const markdown = await fs.readFile(path.join(DOCS_DIR, `${name}.md`), "utf8");
  return { name, title: titleOf(markdown) ?? name, markdown };
}

function titleOf(markdown: string): string | null {
  return /^#\s+(.+)$/m.exec(markdown)?.[1].trim() ?? null;
}

/**
 * Where a link in a guide leads in the portal: another guide (`edge.md#resume`) to its page; a
 * file beside the guides (an example) to the repository's file, named as text; anything else
 * (a web address, an anchor) as it is.
 */
export function docHref(href: string): string | null {
  const guide = /^(?:\.\/)?([a-z][a-z0-9-]*)\.md(#[\w-]*)?$/.exec(href);
  if (guide) return `/docs/${guide[1]}${guide[2] ?? ""}`;
  if (/^(https?:|mailto:|#)/.test(href)) return href;
  return null;
}
