/**
 * Progress for long work: a cli-progress bar on stderr when it is a terminal, nothing otherwise
 * (CI logs stay clean; `--json` runs print their own JSON lines on stdout) — except under `kd run`,
 * which gives each stage a pipe for progress (KD_PROGRESS_FD): there the same line, as text, goes to
 * that pipe a few times a second, and kd run shows it (src/pipeline/progress-relay.ts).
 */
import fs from 'node:fs';
import cliProgress from 'cli-progress';
import { PROGRESS_FD_ENV } from './env.js';

export interface Progress {
  update(value: number, payload: Record<string, string | number>): void;
  stop(): void;
}

let progressFd: number | undefined;

/** At startup: take the progress pipe kd run gave this process (and keep it from what this process starts). */
export function takeProgressFd(env: NodeJS.ProcessEnv = process.env): void {
  const v = env[PROGRESS_FD_ENV];
  delete env[PROGRESS_FD_ENV];
  if (v !== undefined && /^\d+$/.test(v)) progressFd = Number(v);
}

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '--';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

/** cli-progress's {eta_formatted}: kd's durations ("1m05s"), "--" while unknown (cli-progress's "NULL", "INF"). */
export const etaTime = (t: unknown): string => formatDuration(typeof t === 'number' ? t : Number.NaN);

/**
 * A bar's format as one plain line, with cli-progress's own token rules ({bar} becomes a percentage;
 * its built-in tokens such as {eta} win over payload keys of the same name, as on the bar).
 */
export function renderProgress(format: string, value: number, total: number, payload: Record<string, string | number>, etaSec = NaN): string {
  const progress = total > 0 ? Math.min(1, value / total) : 0;
  return cliProgress.Format.Formatter(
    { format: format.replace(/\|?\{bar\}\|?/g, '{percentage}%'), barsize: 0, barCompleteString: '', barIncompleteString: '', barGlue: '', autopaddingChar: '', formatTime: etaTime } as cliProgress.Options,
    { progress, total, value, eta: (Number.isFinite(etaSec) ? Math.round(etaSec) : '--') as number, startTime: Date.now(), stopTime: null, maxWidth: 0 },
    payload,
  );
}

/**
 * A sink for progress lines to kd run's pipe, or undefined outside kd run. Lines come at most every
 * `everyMs` (a final one always); a line the pipe cannot take at once is dropped, never waited for.
 */
export function progressSink(everyMs = 250, fd = progressFd, now: () => number = Date.now): ((line: string, final?: boolean) => void) | undefined {
  if (fd === undefined) return undefined;
  let last = -Infinity;
  return (line, final = false) => {
    const t = now();
    if (!final && t - last < everyMs) return;
    last = t;
    try {
      fs.writeSync(fd, line.replace(/\n/g, ' ') + '\n');
    } catch { /* kd run gone or the pipe full: progress is not worth blocking for */ }
  };
}

/** Progress as lines to `sink`: the bar's format rendered by renderProgress, with a linear ETA. */
export function lineProgress(total: number, format: string, sink: (line: string, final?: boolean) => void, now: () => number = Date.now): Progress {
  const t0 = now();
  let lastValue = 0, lastPayload: Record<string, string | number> = {};
  const render = () => {
    const secs = (now() - t0) / 1000;
    return renderProgress(format, lastValue, total, lastPayload, lastValue > 0 ? (secs / lastValue) * (total - lastValue) : NaN);
  };
  let stopped = false;
  return {
    update(value, payload) {
      lastValue = value;
      lastPayload = payload;
      sink(render());
    },
    stop() {
      if (stopped) return;
      stopped = true;
      if (lastValue > 0) sink(render(), true);
    },
  };
}

/** `format` uses cli-progress tokens: {bar} {value} {total} and the payload keys. */
export function startProgress(total: number, format: string, enabled = Boolean(process.stderr.isTTY)): Progress {
  const sink = progressSink();
  if (sink) return lineProgress(total, format, sink);
  if (!enabled) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar({ format, stream: process.stderr, hideCursor: true, etaBuffer: 50, fps: 5, formatTime: etaTime }, cliProgress.Presets.shades_classic);
  bar.start(total, 0);
  return {
    update: (value, payload) => bar.update(value, payload),
    stop: () => bar.stop(),
  };
}
