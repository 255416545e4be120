/**
 * Percentile bootstrap over units (validation sequences, blocks of a held-out text, timed steps):
 * each replicate draws n units with replacement and recomputes a statistic from the drawn units'
 * sums. Figures of several models on the same units are resampled with the same draws (paired), so
 * the interval of a difference between two models reflects how much they differ on the same data.
 * Seeded: the same report gives the same intervals.
 */
import { Rng } from '../core/rng.js';
import type { Interval } from '../schema/eval-report.js';
export type { Interval } from '../schema/eval-report.js';


export const REPLICATES = 1000;

/** Counts of each of n units in `replicates` resamples (row r: counts[r·n … r·n + n)). */
export function resampleCounts(n: number, replicates = REPLICATES, seed = 1): Uint16Array {
  const rng = new Rng(seed);
  const counts = new Uint16Array(n * replicates);
  for (let r = 0; r < replicates; r++) for (let i = 0; i < n; i++) counts[r * n + Math.floor(rng.next() * n)]++;
  return counts;
}

/** Σ w·x over the units for one replicate's counts. */
export function weighted(w: Uint16Array, x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) if (w[i]) s += w[i] * x[i];
  return s;
}

/**
 * The 95% interval of `stat` over resamples of n units; `stat(w)` gets one replicate's counts
 * (a view of length n). Null when there are fewer than 2 units or no finite replicate.
 */
export function bootstrap(counts: Uint16Array, n: number, stat: (w: Uint16Array) => number): Interval | null {
  if (n < 2) return null;
  const R = counts.length / n;
  const vals: number[] = [];
  for (let r = 0; r < R; r++) {
    const v = stat(counts.subarray(r * n, (r + 1) * n));
    if (Number.isFinite(v)) vals.push(v);
  }
  return vals.length < R / 2 ? null : percentileInterval(vals);
}

/** The 2.5th and 97.5th percentiles of replicate values. */
export function percentileInterval(vals: number[]): Interval {
  const a = [...vals].sort((x, y) => x - y);
  const q = (p: number) => {
    const pos = p * (a.length - 1), lo = Math.floor(pos), hi = Math.ceil(pos);
    return a[lo] + (a[hi] - a[lo]) * (pos - lo);
  };
  return { lo: q(0.025), hi: q(0.975) };
}

/** True when the interval lies entirely on one side of 0 (a difference the data can tell apart). */
export function excludesZero(ci: Interval | null): boolean {
  return ci !== null && (ci.lo > 0 || ci.hi < 0);
}
