/**
 * Live figures of a collect run, and the progress bar drawn from them on a TTY (stderr).
 */
import type { WriteStream } from 'node:tty';
import cliProgress from 'cli-progress';

export interface CollectProgress {
  /** Requests planned in the input (rows × chunks), including those already done. */
  total: number;
  /** Requests done: answered or rejected, in this run or an earlier one. */
  done: number;
  /** Answered/rejected in this run. */
  answered: number;
  rejected: number;
  retries: number;
  failures: number;
  inFlight: number;
  promptTokens: number;
  completionTokens: number;
  /** USD spent in this run (usage × price), plus what earlier runs' records cost. */
  costUsd: number;
  elapsedMs: number;
}

export interface ProgressBar {
  update(p: CollectProgress): void;
  stop(): void;
}

function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return '--';
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The figures shown next to the bar (pure, for tests). */
export function progressFields(p: CollectProgress, startDone: number): Record<string, string> {
  const secs = Math.max(p.elapsedMs / 1000, 1e-3);
  const thisRun = p.done - startDone;
  const rps = thisRun / secs;
  const remaining = p.total - p.done;
  return {
    rps: rps.toFixed(1),
    tps: ((p.promptTokens + p.completionTokens) / secs).toFixed(0),
    cost: p.costUsd.toFixed(p.costUsd < 1 ? 4 : 2),
    eta: remaining <= 0 ? '0s' : rps > 0 ? fmtDuration(remaining / rps) : '--',
    retries: String(p.retries),
  };
}

/** A cli-progress bar on stderr; only call when stderr is a TTY. */
export function progressBar(stream: WriteStream, startDone: number): ProgressBar {
  const bar = new cliProgress.SingleBar({
    stream,
    format: 'collect {bar} {value}/{total} | {rps} req/s | {tps} tok/s | ${cost} | ETA {eta} | retries {retries}',
    barCompleteChar: '█',
    barIncompleteChar: '░',
    hideCursor: true,
    fps: 5,
  });
  let started = false;
  return {
    update(p) {
      const fields = progressFields(p, startDone);
      if (!started) {
        bar.start(p.total, p.done, fields);
        started = true;
      } else {
        bar.setTotal(p.total);
        bar.update(p.done, fields);
      }
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
