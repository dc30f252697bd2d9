import { cn } from "./cn";

export function ProgressBar({ value, label, tone = "blue", className }: { value: number; label: string; tone?: "blue" | "green" | "red" | "amber"; className?: string }) {
  const pct = Math.round(Math.min(1, Math.max(0, value)) * 100);
  const colors = { blue: "bg-brand-500", green: "bg-emerald-500", red: "bg-red-500", amber: "bg-amber-500" };
  return (
    <div role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct} className={cn("h-2 w-full overflow-hidden rounded-full bg-zinc-200 dark:bg-zinc-800", className)}>
      <div className={cn("h-full rounded-full transition-[width] duration-300", colors[tone])} style={{ width: `${pct}%` }} />
    </div>
  );
}
