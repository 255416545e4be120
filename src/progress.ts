/**
 * Progress for long work: a cli-progress bar on stderr when it is a terminal, nothing otherwise
 * (CI logs stay clean; `--json` runs print their own JSON lines on stdout).
 */
import cliProgress from 'cli-progress';

export interface Progress {
  update(value: number, payload: Record<string, string | number>): void;
  stop(): void;
}

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '--';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

/** `format` uses cli-progress tokens: {bar} {value} {total} and the payload keys. */
export function startProgress(total: number, format: string, enabled = Boolean(process.stderr.isTTY)): Progress {
  if (!enabled) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar({ format, stream: process.stderr, hideCursor: true, etaBuffer: 50, fps: 5 }, cliProgress.Presets.shades_classic);
  bar.start(total, 0);
  return {
    update: (value, payload) => bar.update(value, payload),
    stop: () => bar.stop(),
  };
}
