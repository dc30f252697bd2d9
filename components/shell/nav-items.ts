/** The portal's main pages, in the order the sidebar shows them. */
export const navItems = [
  { href: "/", label: "Overview" },
  { href: "/datasets", label: "Datasets" },
  { href: "/models", label: "Models" },
  { href: "/endpoints", label: "Endpoints" },
  { href: "/training", label: "Training" },
  { href: "/fleet", label: "Fleet" },
  { href: "/agents", label: "Agents" },
  { href: "/robots", label: "Robots" },
  { href: "/captures", label: "Captures" },
  { href: "/jobs", label: "Jobs" },
  { href: "/docs", label: "Guides" },
  { href: "/settings", label: "Settings" },
] as const;
