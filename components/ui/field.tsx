import { useId, type InputHTMLAttributes, type SelectHTMLAttributes } from "react";
import { cn } from "./cn";

const control = "h-10 w-full rounded-md border border-zinc-300 bg-white px-3 text-sm text-zinc-900 placeholder:text-zinc-400 focus:border-brand-500 focus:outline-none focus:ring-2 focus:ring-brand-500/30 dark:border-zinc-700 dark:bg-zinc-950 dark:text-zinc-100";

export function TextField({ label, hint, error, className, ...props }: InputHTMLAttributes<HTMLInputElement> & { label: string; hint?: string; error?: string }) {
  const id = useId();
  return (
    <div className={cn("space-y-1.5", className)}>
      <label htmlFor={id} className="block text-sm font-medium">{label}</label>
      <input id={id} className={control} aria-invalid={error ? true : undefined} aria-describedby={error || hint ? `${id}-note` : undefined} {...props} />
      {(error || hint) && <p id={`${id}-note`} className={cn("text-xs", error ? "text-red-600 dark:text-red-400" : "text-zinc-500")}>{error ?? hint}</p>}
    </div>
  );
}

export function SelectField({ label, options, className, ...props }: SelectHTMLAttributes<HTMLSelectElement> & { label: string; options: Array<{ value: string; label: string }> }) {
  const id = useId();
  return (
    <div className={cn("space-y-1.5", className)}>
      <label htmlFor={id} className="block text-sm font-medium">{label}</label>
      <select id={id} className={control} {...props}>
        {options.map((o) => <option key={o.value} value={o.value}>{o.label}</option>)}
      </select>
    </div>
  );
}
