"use client";

import { useEffect, useRef, useState } from "react";
import { Button } from "./button";

type Outcome = "idle" | "copied" | "refused";

/**
 * Copies `text` to the clipboard. The Clipboard API exists only on https and localhost: on a
 * portal opened over plain http on the network it falls back to the browser's copy command, and
 * when that is refused too it says so and selects the text (`selectTarget`), so the person can
 * press Ctrl+C instead of trusting a button that did nothing.
 */
export function CopyButton({ text, label, selectTarget }: { text: string; label?: string; selectTarget?: () => HTMLInputElement | HTMLElement | null }) {
  const [outcome, setOutcome] = useState<Outcome>("idle");
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => () => clearTimeout(timer.current ?? undefined), []);
  // A new text (a new token, a new link) has not been copied yet.
  useEffect(() => setOutcome("idle"), [text]);

  const copy = async () => {
    clearTimeout(timer.current ?? undefined);
    const copied = (await writeWithClipboardApi(text)) || writeWithCopyCommand(text);
    if (!copied) selectText(selectTarget?.() ?? null);
    setOutcome(copied ? "copied" : "refused");
    if (copied) timer.current = setTimeout(() => setOutcome("idle"), 2000);
  };
  return (
    <span className="inline-flex shrink-0 flex-col items-end gap-1">
      <Button size="sm" variant="secondary" onClick={() => void copy()} aria-label={label}>{outcome === "copied" ? "Copied" : "Copy"}</Button>
      {outcome === "refused" && (
        <span role="status" className="max-w-56 text-right text-xs text-amber-700 dark:text-amber-400">
          This browser did not let the page copy: the text is selected, press Ctrl+C (⌘C on a Mac).
        </span>
      )}
    </span>
  );
}

async function writeWithClipboardApi(text: string): Promise<boolean> {
  if (typeof navigator === "undefined" || !navigator.clipboard || typeof window === "undefined" || !window.isSecureContext) return false;
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/** The older copy command, on a text area made for the purpose; false when the browser refuses it. */
function writeWithCopyCommand(text: string): boolean {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  const focused = document.activeElement as HTMLElement | null;
  area.select();
  try {
    return document.execCommand("copy");
  } catch {
    return false;
  } finally {
    area.remove();
    focused?.focus();
  }
}

function selectText(target: HTMLInputElement | HTMLElement | null): void {
  if (!target) return;
  if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) {
    target.focus();
    target.select();
    return;
  }
  const range = document.createRange();
  range.selectNodeContents(target);
  const selection = window.getSelection();
  selection?.removeAllRanges();
  selection?.addRange(range);
}
