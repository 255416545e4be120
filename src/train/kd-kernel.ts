/**
 * The fused distillation kernel: one pass over each row of logits computes the student's tempered
 * softmax, the divergence to the teacher's top-k, the hard-label cross-entropy and the gradient of
 * the whole loss w.r.t. the logits. It replaces logSoftmax + exp + gather + their gradients over the
 * full vocabulary (the bulk of a training step on wasm, see ../shared/docs/wasm-training.md) with
 * two exp-passes per row — the idea behind "fused linear cross-entropy" kernels.
 *
 * Definitions (N rows, vocabulary V, teacher top-k K, temperature τ, all losses × τ², Hinton et al. 2015):
 *   s = z/τ,  p = softmax(s) over V,  ls_k = log p[id_k]               (student, full vocabulary)
 *   pt = softmax(lt/τ) over the k ids                                  (teacher top-k, renormalised)
 *   forward KL   τ²·Σ_k pt_k (log pt_k − ls_k)
 *   reverse KL   τ²·Σ_k qs_k (log qs_k − log pt_k),   qs = softmax over the k ids of s[id_k]
 *   JSD(β)       τ²·[β·KL(pt‖M) + (1−β)·KL(qs‖M)],    M = β·pt + (1−β)·qs   (Agarwal et al. 2024)
 *   hard CE      −log softmax(z)[target]   (τ = 1)
 *   loss = (1−α)·mean over labelled rows of the divergence + α·mean over rows with a target of CE
 * Teacher entries that are not finite or ≤ −9999 (the APIs' "outside the top-k" sentinel) are ignored;
 * a row with no usable entry counts as unlabelled.
 */

export const DIVERGENCES = ['forward-kl', 'reverse-kl', 'jsd'] as const;
export type Divergence = (typeof DIVERGENCES)[number];

export interface KdLossOptions {
  divergence: Divergence;
  /** softening temperature τ > 0 */
  temperature: number;
  /** weight of the hard-label cross-entropy, 0 ≤ α ≤ 1 */
  alpha: number;
  /** JSD interpolation 0 < β < 1 */
  beta: number;
}

export const DEFAULT_LOSS: KdLossOptions = { divergence: 'forward-kl', temperature: 2, alpha: 0, beta: 0.5 };

/** Teacher labels and targets for N positions, flat. */
export interface KdLabels {
  N: number;
  K: number;
  /** [N·K] student ids of the teacher's top-k */
  topIds: Int32Array;
  /** [N·K] teacher log-probs (natural log, T = 1) */
  topLogprobs: Float32Array;
  /** [N] 1 where the teacher labelled the position */
  mask: Float32Array;
  /** [N] next-token id for the hard loss, −1 where none */
  targets: Int32Array;
  /**
   * Denominators of the step's means when one step spans several calls (gradient accumulation,
   * data-parallel workers): the labelled and targeted positions of the whole step. Defaults to this
   * call's own counts. With them, the per-call losses and gradients simply add up.
   */
  counts?: { labelled: number; targeted: number };
}

export interface KdLossValue {
  /** the mixed loss the gradient belongs to (this call's share when counts are given) */
  loss: number;
  /** sums behind the means, for aggregating over calls */
  kdSum: number;
  ceSum: number;
  /** mean divergence over labelled rows (NaN when none) */
  kd: number;
  /** mean hard CE over rows with a target (NaN when not computed or none) */
  ce: number;
  labelled: number;
  targeted: number;
}

const SENTINEL = -9999;
export const usable = (x: number): boolean => Number.isFinite(x) && x > SENTINEL;

/**
 * Loss of `logits` [N·V] against `labels`; when `grad` is given, writes d loss / d logits into it
 * (same layout). Accumulates in float64.
 */
export function kdLossAndGrad(logits: Float32Array, V: number, labels: KdLabels, o: KdLossOptions, grad?: Float32Array): KdLossValue {
  const { N, K, topIds, topLogprobs, mask, targets } = labels;
  const tau = o.temperature;
  const invTau = 1 / tau;
  const wantCe = o.alpha > 0;
  const { labelled, targeted, wKd, wCe } = lossWeights(labels, o);

  const pt = new Float64Array(K);
  const gk = new Float64Array(K); // d(row divergence)/d s[id_k], without the τ² factor
  let kdSum = 0;
  let ceSum = 0;
  for (let n = 0; n < N; n++) {
    const off = n * V;
    const isKd = isLabelled(labels, n);
    const tgt = wantCe ? targets[n] : -1;
    if (!isKd && tgt < 0) {
      if (grad) grad.fill(0, off, off + V);
      continue;
    }
    let zmax = -Infinity;
    for (let v = 0; v < V; v++) if (logits[off + v] > zmax) zmax = logits[off + v];
    // Σ exp((z − zmax)/τ); the exps are parked in grad to be scaled into probabilities below.
    let sumT = 0;
    if (grad) {
      for (let v = 0; v < V; v++) {
        const e = Math.exp((logits[off + v] - zmax) * invTau);
        grad[off + v] = e;
        sumT += e;
      }
    } else {
      for (let v = 0; v < V; v++) sumT += Math.exp((logits[off + v] - zmax) * invTau);
    }
    const lseT = zmax * invTau + Math.log(sumT); // log Σ exp(s)
    let divergence = 0;
    if (isKd) {
      divergence = rowDivergence(logits, off, invTau, lseT, topIds, topLogprobs, n * K, K, o, pt, gk);
      kdSum += divergence;
    }
    let sum1 = sumT;
    if (tgt >= 0) {
      if (tau !== 1) {
        sum1 = 0;
        for (let v = 0; v < V; v++) sum1 += Math.exp(logits[off + v] - zmax);
      }
      ceSum += zmax + Math.log(sum1) - logits[off + tgt];
    }
    if (!grad) continue;
    // d loss/d z_v = wKd·τ·(p_v·[fwd] − …) + wCe·(p1_v − [v = t]); dense part first.
    const fwd = isKd && o.divergence === 'forward-kl';
    const cKd = fwd ? (wKd * tau) / sumT : 0; // τ²·(1/τ) = τ from s = z/τ
    const cCe = tgt >= 0 ? wCe / sum1 : 0;
    if (tgt >= 0 && tau !== 1) {
      for (let v = 0; v < V; v++) grad[off + v] = cKd * grad[off + v] + cCe * Math.exp(logits[off + v] - zmax);
    } else {
      const c = cKd + cCe;
      for (let v = 0; v < V; v++) grad[off + v] *= c;
    }
    if (isKd) {
      const scale = wKd * tau;
      for (let k = 0; k < K; k++) if (usable(topLogprobs[n * K + k])) grad[off + topIds[n * K + k]] += scale * gk[k];
    }
    if (tgt >= 0) grad[off + tgt] -= wCe;
  }
  return lossValue(kdSum, ceSum, labels, o);
}

/** Positions that count: the teacher labelled them and at least one of its entries is usable. */
export function isLabelled(l: KdLabels, n: number): boolean {
  return l.mask[n] > 0 && rowHasLabel(l.topLogprobs, n * l.K, l.K);
}

/** Per-row weights of the divergence and the CE in the step's loss, and this call's counts. */
export function lossWeights(l: KdLabels, o: KdLossOptions): { labelled: number; targeted: number; wKd: number; wCe: number } {
  let labelled = 0;
  let targeted = 0;
  for (let n = 0; n < l.N; n++) {
    if (isLabelled(l, n)) labelled++;
    if (o.alpha > 0 && l.targets[n] >= 0) targeted++;
  }
  const dKd = l.counts?.labelled ?? labelled;
  const dCe = l.counts?.targeted ?? targeted;
  return { labelled, targeted, wKd: dKd > 0 ? (1 - o.alpha) / dKd : 0, wCe: dCe > 0 ? o.alpha / dCe : 0 };
}

export function lossValue(kdSum: number, ceSum: number, l: KdLabels, o: KdLossOptions): KdLossValue {
  const { labelled, targeted, wKd, wCe } = lossWeights(l, o);
  return {
    loss: wKd * kdSum + wCe * ceSum, kdSum, ceSum,
    kd: labelled > 0 ? kdSum / labelled : NaN, ce: targeted > 0 ? ceSum / targeted : NaN, labelled, targeted,
  };
}

let scratchBuf = new Float64Array(0);
function scratch(K: number): Float64Array {
  if (scratchBuf.length < K) scratchBuf = new Float64Array(K);
  return scratchBuf;
}

function rowHasLabel(lp: Float32Array, base: number, K: number): boolean {
  for (let k = 0; k < K; k++) if (usable(lp[base + k])) return true;
  return false;
}

/**
 * Divergence of one row (× τ²) and, in gk, its derivative w.r.t. s[id_k] for each support entry
 * (÷ τ², the caller rescales). For forward KL gk holds only the −pt part: the dense p part is added
 * by the caller while it has the exps at hand.
 */
export function rowDivergence(
  z: Float32Array, off: number, zScale: number, lseT: number,
  ids: Int32Array, lt: Float32Array, base: number, K: number,
  o: KdLossOptions, pt: Float64Array, gk: Float64Array,
): number {
  const tau2 = o.temperature * o.temperature;
  const invTau = 1 / o.temperature;
  // teacher: pt = softmax(lt/τ) over usable entries
  let tmax = -Infinity;
  for (let k = 0; k < K; k++) if (usable(lt[base + k]) && lt[base + k] * invTau > tmax) tmax = lt[base + k] * invTau;
  let tsum = 0;
  for (let k = 0; k < K; k++) {
    pt[k] = usable(lt[base + k]) ? Math.exp(lt[base + k] * invTau - tmax) : 0;
    tsum += pt[k];
  }
  const logTsum = Math.log(tsum);
  for (let k = 0; k < K; k++) pt[k] /= tsum;
  const logPt = (k: number) => lt[base + k] * invTau - tmax - logTsum;

  if (o.divergence === 'forward-kl') {
    let d = 0;
    for (let k = 0; k < K; k++) {
      gk[k] = -pt[k];
      if (pt[k] > 0) d += pt[k] * (logPt(k) - (z[off + ids[base + k]] * zScale - lseT));
    }
    return tau2 * d;
  }
  // student renormalised over the support: qs = softmax(s[id_k]) over usable k
  let smax = -Infinity;
  for (let k = 0; k < K; k++) if (usable(lt[base + k])) smax = Math.max(smax, z[off + ids[base + k]] * zScale);
  let ssum = 0;
  const qs = gk; // reuse: qs first, then overwritten by the gradient
  for (let k = 0; k < K; k++) {
    qs[k] = usable(lt[base + k]) ? Math.exp(z[off + ids[base + k]] * zScale - smax) : 0;
    ssum += qs[k];
  }
  const logSsum = Math.log(ssum);
  let d = 0;
  let mean = 0; // Σ_j qs_j g_j for the softmax Jacobian
  const g = scratch(K);
  for (let k = 0; k < K; k++) {
    if (!usable(lt[base + k])) continue;
    const logQ = z[off + ids[base + k]] * zScale - smax - logSsum;
    const q = Math.exp(logQ);
    qs[k] = q;
    if (o.divergence === 'reverse-kl') {
      const r = logQ - logPt(k);
      d += q * r;
      g[k] = r;
    } else {
      const b = o.beta;
      const m = b * pt[k] + (1 - b) * q;
      const logM = Math.log(m);
      d += (pt[k] > 0 ? b * pt[k] * (logPt(k) - logM) : 0) + (q > 0 ? (1 - b) * q * (logQ - logM) : 0);
      g[k] = (1 - b) * (logQ - logM); // d JSD / d qs_k (derived in the header's terms)
    }
    mean += q * g[k];
  }
  for (let k = 0; k < K; k++) gk[k] = usable(lt[base + k]) ? qs[k] * (g[k] - mean) : 0;
  return tau2 * d;
}
