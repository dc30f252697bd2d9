import type { HTMLAttributes, ReactNode } from "react";
import { cn } from "./cn";

type AlertProps = Omit<HTMLAttributes<HTMLDivElement>, "title"> & { tone?: "red" | "amber" | "green" | "blue"; title?: ReactNode };

/** A message box; other attributes (data-*, id, aria-*) go on its element. */
export function Alert({ tone = "red", title, children, className, ...rest }: AlertProps) {
  const tones = {
    red: "border-red-200 bg-red-50 text-red-900 dark:border-red-900 dark:bg-red-950/50 dark:text-red-200",
    amber: "border-amber-200 bg-amber-50 text-amber-900 dark:border-amber-900 dark:bg-amber-950/50 dark:text-amber-200",
    green: "border-emerald-200 bg-emerald-50 text-emerald-900 dark:border-emerald-900 dark:bg-emerald-950/50 dark:text-emerald-200",
    blue: "border-blue-200 bg-blue-50 text-blue-900 dark:border-blue-900 dark:bg-blue-950/50 dark:text-blue-200",
  };
  return (
    <div role={tone === "red" ? "alert" : "status"} {...rest} className={cn("rounded-md border px-4 py-3 text-sm", tones[tone], className)}>
      {title && <p className="font-medium">{title}</p>}
      {children && <div className={title ? "mt-1" : undefined}>{children}</div>}
    </div>
  );
}
