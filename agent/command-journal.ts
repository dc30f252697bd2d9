import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import type { AgentMessage } from "../server/hardware/hardware.schemas";

// What an agent started and how each command ended, kept in a file under the agent's folder so
// it outlasts the process. After a restart (a crash, a service restarted within the portal's
// grace) the portal sends again every command that had not ended: one the journal says an
// earlier process started is answered as interrupted instead of run a second time (a recipe
// from its first step, a range recording from the start), and one it finished gets the same
// outcome. Each change is written whole to a temporary file and renamed over the journal, so a
// kill leaves the old journal or the new one, never half of one.

export type Outcome = Extract<AgentMessage, { type: "result" }>["outcome"];

/** How long a command is remembered once started, and how many at most. */
const REMEMBER_MS = 15 * 60_000;
const REMEMBER_MAX = 1000;

const entrySchema = z.object({ at: z.number(), outcome: z.unknown().optional() });
const journalSchema = z.record(z.string(), entrySchema);
type Entry = { at: number; outcome?: Outcome };

export class CommandJournal {
  private readonly entries = new Map<string, Entry>();
  /** Commands this process started (those the journal held before it came from an earlier one). */
  private readonly ours = new Set<string>();

  /** `file` null keeps the journal in memory only. */
  constructor(private readonly file: string | null) {
    if (!file) return;
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch {
      return; // none yet
    }
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      /* a damaged journal counts as empty */
    }
    const parsed = journalSchema.safeParse(json);
    if (parsed.success) for (const [id, entry] of Object.entries(parsed.data)) this.entries.set(id, entry as Entry);
  }

  /** The outcome a command ended with, if it ended. */
  outcomeOf(id: string): Outcome | undefined {
    return this.entries.get(id)?.outcome;
  }

  /** Whether an earlier process of this agent started the command and did not see it end. */
  wasInterrupted(id: string): boolean {
    const entry = this.entries.get(id);
    return entry !== undefined && entry.outcome === undefined && !this.ours.has(id);
  }

  started(id: string): void {
    this.ours.add(id);
    this.entries.set(id, { at: Date.now() });
    this.save();
  }

  finished(id: string, outcome: Outcome): void {
    this.entries.set(id, { at: this.entries.get(id)?.at ?? Date.now(), outcome });
    this.save();
  }

  private save(): void {
    const now = Date.now();
    const kept = [...this.entries].filter(([, e]) => now - e.at <= REMEMBER_MS).slice(-REMEMBER_MAX);
    this.entries.clear();
    for (const [id, e] of kept) this.entries.set(id, e);
    if (!this.file) return;
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      const temp = `${this.file}.${process.pid}.tmp`;
      fs.writeFileSync(temp, JSON.stringify(Object.fromEntries(this.entries)), { mode: 0o600 });
      fs.renameSync(temp, this.file);
    } catch {
      // A full or read-only disk must not stop the command: the journal is kept in memory meanwhile.
    }
  }
}
