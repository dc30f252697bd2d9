import { notFound } from "next/navigation";
import { z } from "zod";

const uuid = z.uuid();

/**
 * An id from a page's address. Every record's id is a UUID, so an address whose id cannot be
 * one (a typo, a cut-off link) names no page: it gets the portal's 404, not an error box about
 * the API's input.
 */
export function pageId(id: string): string {
  if (!uuid.safeParse(id).success) notFound();
  return id;
}
