import Link from "next/link";
import { navItems } from "@/components/shell/nav-items";

export const metadata = { title: "Page not found" };

// The sidebar's pages, less the Overview (the button above) and Settings (it needs a session).
const pages = navItems.filter((p) => p.href !== "/" && p.href !== "/settings");

/** Any address with no page: the portal's own 404, with the way back. */
export default function NotFound() {
  return (
    <main className="flex min-h-screen items-center justify-center px-4 py-12">
      <div className="w-full max-w-md">
        <Link href="/" className="text-2xl font-semibold tracking-tight">Gantry</Link>
        <p className="mt-8 text-sm font-medium text-zinc-500">404</p>
        <h1 className="mt-1 text-2xl font-semibold tracking-tight">This page does not exist</h1>
        <p className="mt-3 text-sm text-zinc-600 dark:text-zinc-400">
          Check the address, or go back to the Overview.
        </p>
        <Link href="/" className="mt-6 inline-flex h-10 items-center rounded-md bg-brand-600 px-4 text-sm font-medium text-white hover:bg-brand-700">Back to Overview</Link>
        <nav aria-label="Portal pages" className="mt-8 border-t border-zinc-200 pt-4 dark:border-zinc-800">
          <ul className="flex flex-wrap gap-x-4 gap-y-2 text-sm">
            {pages.map((p) => (
              <li key={p.href}>
                <Link href={p.href} className="text-brand-600 hover:underline dark:text-brand-500">{p.label}</Link>
              </li>
            ))}
          </ul>
        </nav>
      </div>
    </main>
  );
}
