import cliProgress from "cli-progress";

// Progress on a terminal is a bar with rate and ETA; in a log (no TTY) it is a plain line now
// and then, so a service's journal stays readable.

export interface Progress {
  start(label: string, total: number, unit: "bytes" | "files"): void;
  update(value: number): void;
  stop(summary?: string): void;
  log(line: string): void;
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

const formatSeconds = (s: number) => (!Number.isFinite(s) ? "?" : s < 60 ? `${Math.ceil(s)}s` : `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, "0")}s`);

export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  const isTty = Boolean(stream.isTTY) && process.env.TERM !== "dumb";
  let label = "";
  let total = 0;
  let unit: "bytes" | "files" = "bytes";
  let startedAt = 0;
  let lastLineAt = 0;
  let bar: cliProgress.SingleBar | null = null;

  const rate = (value: number) => {
    const secs = (Date.now() - startedAt) / 1000;
    return secs > 0 ? value / secs : 0;
  };
  const describe = (value: number) => {
    const r = rate(value);
    const eta = r > 0 ? (total - value) / r : Infinity;
    const amount = unit === "bytes" ? `${formatBytes(value)}/${formatBytes(total)}` : `${value}/${total} files`;
    const speed = unit === "bytes" ? `${formatBytes(r)}/s` : `${r.toFixed(0)} files/s`;
    return { amount, speed, eta: formatSeconds(eta) };
  };

  return {
    start(newLabel, newTotal, newUnit) {
      label = newLabel;
      total = Math.max(newTotal, 1);
      unit = newUnit;
      startedAt = Date.now();
      lastLineAt = 0;
      if (isTty) {
        bar = new cliProgress.SingleBar(
          { format: "{label} [{bar}] {percentage}% | {amount} | {speed} | ETA {etaText}", hideCursor: true, stream, barsize: 30, etaBuffer: 50 },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, 0, { label, ...describe(0), etaText: "?" });
      } else {
        stream.write(`${label}: started (${unit === "bytes" ? formatBytes(total) : `${total} files`})\n`);
      }
    },
    update(value) {
      const d = describe(value);
      if (bar) {
        bar.update(value, { label, ...d, etaText: d.eta });
      } else if (Date.now() - lastLineAt > 2000) {
        lastLineAt = Date.now();
        stream.write(`${label}: ${Math.floor((100 * value) / total)}% ${d.amount} ${d.speed} ETA ${d.eta}\n`);
      }
    },
    stop(summary) {
      if (bar) {
        bar.stop();
        bar = null;
      }
      if (summary) stream.write(`${label}: ${summary}\n`);
    },
    log(line) {
      // Over the bar, which draws itself again on the next update.
      stream.write(bar ? `\r\x1b[2K${line}\n` : `${line}\n`);
    },
  };
}
