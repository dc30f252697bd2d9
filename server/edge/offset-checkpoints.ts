// Saves of an upload's offset while a request goes on, shared by the episode upload stores: one
// save at a time, each once at least `every` more bytes count than the last saved, none after
// the request's own last word. A save that fails is skipped: the next one, or the request's
// end, says it.

export interface OffsetCheckpoints {
  /** Saves the offset now, if it has moved on far enough and no save is on its way. */
  checkpoint(): void;
  /** Waits for a save on its way. */
  settled(): Promise<void>;
  /** No save starts after this; waits for one on its way. */
  end(): Promise<void>;
}

export function offsetCheckpoints({ every, saved, offsetNow, save }: { every: number; saved: () => number; offsetNow: () => number; save: (at: number) => Promise<void> }): OffsetCheckpoints {
  let saving: Promise<void> | null = null;
  let isEnded = false;
  const settled = async () => {
    while (saving) await saving;
  };
  const checkpoint = () => {
    if (saving || isEnded) return;
    const at = offsetNow();
    if (at - saved() < every) return;
    saving = save(at)
      .catch(() => {})
      .finally(() => {
        saving = null;
        checkpoint();
      });
  };
  return {
    checkpoint,
    settled,
    async end() {
      isEnded = true;
      await settled();
    },
  };
}
