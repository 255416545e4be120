/**
 * Evaluation metrics of a student against the teacher's top-k, as pure functions over flat arrays.
 * They accumulate sums over positions (`MetricSums`), so any number of validation batches stream
 * through in constant memory; `finishMetrics` turns the sums into the figures of the report.
 *
 * Per position n of a batch (N = B·T positions, vocabulary V, teacher top-k K):
 *   ls = the student's log-softmax over the full vocabulary, T = 1             ls: [N·V]
 *   the teacher's entries are (id_k, lt_k); entries that are not finite or ≤ −9999 (the APIs'
 *   "outside the top-k" sentinel) are ignored, as in kd-kernel.ts. A position is *labelled* when
 *   mask[n] = 1 and it has at least one usable entry; k(n) = its number of usable entries.
 *
 * Over labelled positions:
 *   kl         forward KL at T = 1 over the teacher's top-k plus one tail class, exactly the training
 *              default's divergence (kd-kernel.ts, missingMass "tail"):
 *                Σ_k pt_k (log pt_k − ls[id_k]) + R·(log R − log q_tail),
 *              pt_k = exp(lt_k) as the teacher gave them, R = 1 − Σ_k pt_k its mass outside the top-k,
 *              q_tail = 1 − Σ_k exp(ls[id_k]) the student's (floored at 1e-6). It is the KL between the two
 *              distributions coarsened to k + 1 classes, so a lower bound on the full-vocabulary KL; ≥ 0.
 *   agreement  1 when argmax_v ls[v] over the FULL vocabulary equals the teacher's top-1 id (the id
 *              of the largest usable lt_k; the first one on ties), else 0.
 *   recall     |student top-k(n) ∩ teacher top-k(n)| / k(n). A teacher id counts as in the
 *              student's top-k when ls[id] ≥ the k-th largest value of ls (ties count in the
 *              student's favour; with float logits they practically never happen).
 * Over positions with an actual next token (targets[n] ≥ 0):
 *   ppl        student perplexity exp(mean −ls[target]).
 *   accuracy   student argmax = target.
 *   ece        expected calibration error of the student's top-1 confidence exp(max ls) against
 *              "argmax = target", over `bins` equal-width bins of [0, 1]:
 *              Σ_b (n_b / N) · |accuracy_b − confidence_b|   (Guo et al. 2017).
 *   teacherPpl exp(mean −lt[target]) over the positions whose target is among the teacher's usable
 *              entries (raw log-probs, not renormalised). Misses are EXCLUDED, not guessed: the
 *              teacher's probability of a token outside its top-k is unknown. teacherCoverage is the
 *              fraction of targeted positions that were hits, so a reader sees how much it covers;
 *              null when no target was a hit.
 */
import { usableLogprob as usable } from '../core/logprob.js';
import type { ReliabilityBin, EvalMetrics } from '../schema/eval-report.js';
import { type KdLossOptions, newRowGrad, rowDivergence } from '../train/index.js';
export type { ReliabilityBin, EvalMetrics } from '../schema/eval-report.js';

/** The divergence `kl` reports: forward KL at T = 1 with the teacher's missing mass as a tail class. */
const KL_OPTIONS: KdLossOptions = { divergence: 'forward-kl', temperature: 1, alpha: 0, beta: 0.5, missingMass: 'tail', unlabelledWeight: 0, tailTarget: 0 };

export interface PositionLabels {
  /** [N·K] teacher top-k ids */
  topIds: Int32Array;
  /** [N·K] teacher log-probs (natural log, T = 1) */
  topLogprobs: Float32Array;
  /** [N] 1 where the teacher labelled the position */
  mask: Float32Array;
  /** [N] actual next token, −1 where none */
  targets: Int32Array;
  K: number;
}

export interface MetricSums {
  bins: number;
  labelled: number;
  klSum: number;
  agreeSum: number;
  recallSum: number;
  targeted: number;
  ceSum: number;
  correctSum: number;
  teacherHits: number;
  teacherNllSum: number;
  /** per calibration bin: positions, Σ confidence, Σ correct */
  binCount: number[];
  binConf: number[];
  binCorrect: number[];
}



export function emptySums(bins = 10): MetricSums {
  if (!Number.isInteger(bins) || bins < 1) throw new Error(`bins must be a positive integer, got ${bins}`);
  return {
    bins, labelled: 0, klSum: 0, agreeSum: 0, recallSum: 0, targeted: 0, ceSum: 0, correctSum: 0, teacherHits: 0, teacherNllSum: 0,
    binCount: new Array(bins).fill(0), binConf: new Array(bins).fill(0), binCorrect: new Array(bins).fill(0),
  };
}

/** The k-th largest value of row (1 ≤ k ≤ row.length), by quickselect on a copy: O(V). */
export function kthLargest(row: ArrayLike<number>, k: number): number {
  const a = Float64Array.from(row as ArrayLike<number>);
  let lo = 0, hi = a.length - 1;
  const want = k - 1; // index in descending order
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) { const t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else break;
  }
  return a[want];
}

/**
 * Adds the positions of one batch to `sums` (mutated and returned).
 *   ls: [N·V] student log-softmax at T = 1;   labels: N positions with K teacher entries each.
 */
export function addPositions(sums: MetricSums, ls: Float32Array, V: number, labels: PositionLabels): MetricSums {
  const { K, topIds, topLogprobs, mask, targets } = labels;
  const N = mask.length;
  if (ls.length !== N * V) throw new Error(`student log-probs have ${ls.length} values, expected N·V = ${N}·${V}`);
  const lp = new Float64Array(K);
  const ids = new Int32Array(K);
  const rowGrad = newRowGrad(K);
  for (let n = 0; n < N; n++) {
    const off = n * V;
    let amax = 0;
    for (let v = 1; v < V; v++) if (ls[off + v] > ls[off + amax]) amax = v;
    // the teacher's usable entries
    let k = 0;
    if (mask[n] > 0) {
      for (let j = 0; j < K; j++) {
        const x = topLogprobs[n * K + j];
        if (usable(x)) { lp[k] = x; ids[k] = topIds[n * K + j]; k++; }
      }
    }
    if (k > 0) {
      let m = -Infinity, top = 0;
      for (let j = 0; j < k; j++) if (lp[j] > m) { m = lp[j]; top = j; }
      // ls is a log-softmax: logits ls with log Σ exp = 0
      const kl = rowDivergence(ls, off, 1, 0, V, topIds, topLogprobs, n * K, K, -1, KL_OPTIONS, rowGrad);
      const kth = kthLargest(ls.subarray(off, off + V), Math.min(k, V));
      let hits = 0;
      for (let j = 0; j < k; j++) if (ls[off + ids[j]] >= kth) hits++;
      sums.labelled++;
      sums.klSum += kl;
      sums.agreeSum += amax === ids[top] ? 1 : 0;
      sums.recallSum += hits / k;
    }
    const t = targets[n];
    if (t >= 0) {
      if (t >= V) throw new Error(`target id ${t} at position ${n} is outside the student's vocabulary (${V})`);
      const conf = Math.exp(ls[off + amax]);
      const correct = amax === t ? 1 : 0;
      const b = Math.min(Math.floor(conf * sums.bins), sums.bins - 1);
      sums.targeted++;
      sums.ceSum -= ls[off + t];
      sums.correctSum += correct;
      sums.binCount[b]++;
      sums.binConf[b] += conf;
      sums.binCorrect[b] += correct;
      for (let j = 0; j < k; j++) {
        if (ids[j] === t) { sums.teacherHits++; sums.teacherNllSum -= lp[j]; break; }
      }
    }
  }
  return sums;
}

const ratio = (a: number, n: number): number | null => (n > 0 ? a / n : null);

export function finishMetrics(s: MetricSums): EvalMetrics {
  const reliability: ReliabilityBin[] = s.binCount.map((count, b) => ({
    lo: b / s.bins, hi: (b + 1) / s.bins, count,
    confidence: ratio(s.binConf[b], count), accuracy: ratio(s.binCorrect[b], count),
  }));
  let ece = 0;
  for (let b = 0; b < s.bins; b++) if (s.binCount[b] > 0) ece += Math.abs(s.binCorrect[b] - s.binConf[b]) / s.targeted;
  return {
    labelled: s.labelled, targeted: s.targeted,
    kl: ratio(s.klSum, s.labelled), agreement: ratio(s.agreeSum, s.labelled), recall: ratio(s.recallSum, s.labelled),
    ppl: s.targeted > 0 ? Math.exp(s.ceSum / s.targeted) : null,
    accuracy: ratio(s.correctSum, s.targeted),
    ece: s.targeted > 0 ? ece : null,
    teacherPpl: s.teacherHits > 0 ? Math.exp(s.teacherNllSum / s.teacherHits) : null,
    teacherCoverage: ratio(s.teacherHits, s.targeted),
    reliability,
  };
}

/** Linear-interpolated percentile (q in [0, 1]) of unsorted values; null when empty. */
export function percentile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const a = [...values].sort((x, y) => x - y);
  const pos = q * (a.length - 1);
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return a[lo] + (a[hi] - a[lo]) * (pos - lo);
}
