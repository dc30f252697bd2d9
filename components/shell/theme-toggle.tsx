"use client";

import { useEffect, useState } from "react";

/** Light, dark, or the system's choice; remembered in this browser. */
export function ThemeToggle() {
  const [theme, setTheme] = useState<"light" | "dark" | "system">("system");
  useEffect(() => setTheme((localStorage.getItem("gantry-theme") as "light" | "dark" | null) ?? "system"), []);
  const apply = (next: "light" | "dark" | "system") => {
    setTheme(next);
    if (next === "system") localStorage.removeItem("gantry-theme");
    else localStorage.setItem("gantry-theme", next);
    const isDark = next === "dark" || (next === "system" && matchMedia("(prefers-color-scheme: dark)").matches);
    document.documentElement.classList.toggle("dark", isDark);
  };
  return (
    <label className="flex items-center gap-2 text-xs text-zinc-500">
      <span>Theme</span>
      <select
        aria-label="Colour theme"
        value={theme}
        onChange={(e) => apply(e.target.value as "light" | "dark" | "system")}
        className="rounded border border-zinc-300 bg-transparent px-1.5 py-1 text-xs dark:border-zinc-700"
      >
        <option value="system">System</option>
        <option value="light">Light</option>
        <option value="dark">Dark</option>
      </select>
    </label>
  );
}

/** Runs before paint so a dark page never flashes light. */
export const themeScript = `try{var t=localStorage.getItem("gantry-theme");if(t==="dark"||(!t&&matchMedia("(prefers-color-scheme: dark)").matches))document.documentElement.classList.add("dark")}catch(e){}`;
