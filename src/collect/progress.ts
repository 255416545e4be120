/**
 * Live figures of a collect run, and the progress bar drawn from them on a TTY (stderr).
 */
import type { WriteStream } from 'node:tty';
import cliProgress from 'cli-progress';
import { formatDuration, renderProgress } from '../core/progress.js';

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
    etaText: remaining <= 0 ? '0s' : rps > 0 ? formatDuration(remaining / rps) : '--',
    retries: String(p.retries),
  };
}

export const COLLECT_BAR_FORMAT = 'collect {bar} {value}/{total} | {rps} req/s | {tps} tok/s | ${cost} | ETA {etaText} | retries {retries}';

/** A cli-progress bar on stderr; only call when stderr is a TTY. */
export function progressBar(stream: WriteStream, startDone: number): ProgressBar {
  const bar = new cliProgress.SingleBar({
    stream,
    format: COLLECT_BAR_FORMAT,
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

/** The same figures as one text line per update, for kd run's progress pipe (see src/core/progress.ts). */
export function progressLines(sink: (line: string, final?: boolean) => void): ProgressBar {
  let startDone: number | undefined;
  let last: CollectProgress | undefined;
  const line = (p: CollectProgress) => renderProgress(COLLECT_BAR_FORMAT, p.done, p.total, progressFields(p, startDone ?? p.done));
  return {
    update(p) {
      startDone ??= p.done;
      last = p;
      sink(line(p));
    },
    stop() {
      if (last) sink(line(last), true);
      last = undefined;
    },
  };
}
