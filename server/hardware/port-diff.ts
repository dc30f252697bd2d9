// LeRobot's find-port step: list the ports, unplug the arm's USB cable, list again; the port
// that disappeared is the arm's. Pure, so the agent and the browser's wizard share it.

export function findUnpluggedPort<P extends { path: string }>(before: P[], after: P[]): { port: P | null; reason: string } {
  const now = new Set(after.map((p) => p.path));
  const gone = before.filter((p) => !now.has(p.path));
  if (gone.length === 1) return { port: gone[0]!, reason: `${gone[0]!.path} disappeared` };
  if (gone.length === 0) return { port: null, reason: "No port disappeared — unplug the arm's USB cable (not its power) and list again" };
  return { port: null, reason: `${gone.length} ports disappeared (${gone.map((p) => p.path).join(", ")}) — unplug only one adapter` };
}
