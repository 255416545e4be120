/**
 * The fused distillation kernel: one pass over each row of logits computes the student's tempered
 * softmax, the divergence to the teacher's top-k, the hard-label cross-entropy and the gradient of
 * the whole loss w.r.t. the logits. It replaces logSoftmax + exp + gather + their gradients over the
 * full vocabulary with two exp-passes per row — the idea behind "fused linear cross-entropy" kernels.
 *
 * The teacher's top-k is NOT its whole distribution (APIs return ≤ 20 log-probs; on kd's embedded
 * teacher the top-20 holds ~60% of the mass). By default (missingMass "tail") the mass outside the top-k
 * is kept as one more class, the tail; "renormalize" treats the top-k as the whole distribution, which
 * teaches the student that every other token has probability ≈ 0 (measured worse than no distillation).
 *
 * Definitions (vocabulary V, a row's usable teacher entries k = 1..K with log-probs lt_k at T = 1 on
 * student ids id_k, temperature τ, all divergences × τ², Hinton et al. 2015):
 *   student   s = z/τ,  q = softmax(s) over V,  q_k = q[id_k],  q_tail = 1 − Σ_k q_k
 *   teacher   a_k = lt_k/τ;  tail: R = 1 − Σ_k exp(lt_k), tempered as if spread evenly over the other
 *             V − K ids: a_tail = log(R)/τ + (1 − 1/τ)·log(V − K)   ("renormalize": no tail class)
 *             pt = softmax over the classes {a_1..a_K, a_tail}
 *   classes c ∈ {1..K, tail} with student masses q_c (above) and teacher masses pt_c:
 *   forward KL   τ²·Σ_c pt_c (log pt_c − log q_c)
 *   reverse KL   τ²·Σ_c q_c (log q_c − log pt_c)                 (log pt_tail floored at log 1e-12)
 *   JSD(β)       τ²·[β·KL(pt‖m) + (1−β)·KL(q‖m)],  m = β·pt + (1−β)·q   (Agarwal et al. 2024)
 *   "renormalize" with reverse KL / JSD: q is renormalised over the k ids (no tail class on either side).
 *   tailTarget h > 0 ("tail" only): where the row's hard target t is outside the top-k, D += h·(−log(q_t/q_tail)),
 *   the cross-entropy of t within the tail: the teacher gives the tail's mass, the text says where in it.
 * Gradient: with g_c = ∂D/∂q_c and μ = Σ_c q_c·g_c, ∂D/∂s_v = q_v·(g_{c(v)} − μ), because
 * ∂q_c/∂s_v = q_v·([v ∈ c] − q_c). So every id outside the top-k gets q_v·f with one factor per row,
 * f = g_tail − μ (forward KL: 1 − pt_tail/q_tail), and each top-k id its own value (forward KL: q_k − pt_k).
 *   g_c: forward KL −pt_c/q_c;  reverse KL log q_c − log pt_c (+1, which μ cancels);  JSD (1−β)·log(q_c/m_c).
 *
 * The loss mixes three terms over a step's positions:
 *   hard CE      −log softmax(z)[target]   (τ = 1)
 *   loss = (1−α)·[Σ_labelled D + u·Σ_fallback CE] / (labelled + fallback) + α·Σ_targeted CE / targeted
 * where "fallback" rows have a hard target but no soft label (a teacher token that the student
 * vocabulary splits: its continuation pieces), u = unlabelledWeight (0 skips them), and "targeted"
 * rows all rows with a target (only when α > 0). Teacher entries that are not finite or ≤ −9999 (the
 * APIs' "outside the top-k" sentinel) are ignored; a row with no usable entry counts as unlabelled.
 */
import { KdError } from '../core/errors.js';
import { usableLogprob } from '../core/logprob.js';

export const DIVERGENCES = ['forward-kl', 'reverse-kl', 'jsd'] as const;
export type Divergence = (typeof DIVERGENCES)[number];
export const MISSING_MASS = ['tail', 'renormalize'] as const;
export type MissingMass = (typeof MISSING_MASS)[number];

export interface KdLossOptions {
  divergence: Divergence;
  /** softening temperature τ > 0 */
  temperature: number;
  /** weight of the hard-label cross-entropy, 0 ≤ α ≤ 1 */
  alpha: number;
  /** JSD interpolation 0 < β < 1 */
  beta: number;
  /** the teacher's probability outside its top-k: one tail class, or renormalise it away */
  missingMass: MissingMass;
  /** weight u ≥ 0 of the hard target at positions without a soft label, inside the (1−α) term */
  unlabelledWeight: number;
  /** weight h ≥ 0 of the hard target inside the tail, −log(q_t/q_tail), where it is outside the top-k ("tail" only) */
  tailTarget: number;
}

// one line: bench/quality.ts keys its cached runs on the sources without this line, plus its value
export const DEFAULT_LOSS: KdLossOptions = { divergence: 'forward-kl', temperature: 1, alpha: 0.25, beta: 0.5, missingMass: 'tail', unlabelledWeight: 1, tailTarget: 0 };

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
   * data-parallel workers): the counts of the whole step. Defaults to this call's own counts. With
   * them, the per-call losses and gradients simply add up.
   */
  counts?: LossCounts;
}

/** Positions of each kind in a call or a step (see the header). */
export interface LossCounts {
  labelled: number;
  targeted: number;
  fallback: number;
}

export interface KdLossValue {
  /** the mixed loss the gradient belongs to (this call's share when counts are given) */
  loss: number;
  /** sums behind the means, for aggregating over calls */
  kdSum: number;
  ceSum: number;
  fbSum: number;
  /** mean divergence over labelled rows (NaN when none) */
  kd: number;
  /** mean hard CE over rows with a target (NaN when not computed or none) */
  ce: number;
  labelled: number;
  targeted: number;
  fallback: number;
}

export const usable: (x: number) => boolean = usableLogprob;

/** One row's divergence (× τ²) and its gradient w.r.t. s = z/τ, without the τ² factor. */
export interface RowGrad {
  /** the divergence, × τ² */
  d: number;
  /** ∂D/∂s_v = q_v·f for every id v outside the row's top-k (÷ τ²) */
  f: number;
  /** [K] ∂D/∂s at id_k (÷ τ²), 0 for unusable entries */
  gk: Float64Array;
  /** added to ∂D/∂s at the row's target when it is outside the top-k (the tailTarget term), else 0 */
  gt: number;
}

/** Per-row weights of the three terms in the step's loss (see the header), and this call's counts. */
export function lossWeights(l: KdLabels, o: KdLossOptions): LossCounts & { wKd: number; wCe: number; wFb: number } {
  let labelled = 0, targeted = 0, fallback = 0;
  for (let n = 0; n < l.N; n++) {
    const lab = isLabelled(l, n);
    if (lab) labelled++;
    if (l.targets[n] >= 0) {
      if (o.alpha > 0) targeted++;
      if (!lab && isFallback(o)) fallback++;
    }
  }
  const dKd = (l.counts?.labelled ?? labelled) + (l.counts?.fallback ?? fallback);
  const dCe = l.counts?.targeted ?? targeted;
  const wKd = dKd > 0 ? (1 - o.alpha) / dKd : 0;
  return { labelled, targeted, fallback, wKd, wCe: dCe > 0 ? o.alpha / dCe : 0, wFb: wKd * o.unlabelledWeight };
}

const isFallback = (o: KdLossOptions) => o.unlabelledWeight > 0 && o.alpha < 1;

/** Positions that count: the teacher labelled them and at least one of its entries is usable. */
export function isLabelled(l: KdLabels, n: number): boolean {
  return l.mask[n] > 0 && rowHasLabel(l.topLogprobs, n * l.K, l.K);
}

/**
 * Weight of the hard CE at row n (α part, plus the fallback part where the row has no soft label)
 * and whether the row needs anything at all.
 */
export function rowWeights(l: KdLabels, o: KdLossOptions, w: { wCe: number; wFb: number }, n: number): { labelled: boolean; ce: number; ceAlpha: boolean; fallback: boolean } {
  const labelled = isLabelled(l, n);
  const t = l.targets[n];
  const ceAlpha = t >= 0 && o.alpha > 0;
  const fallback = t >= 0 && !labelled && isFallback(o);
  return { labelled, ceAlpha, fallback, ce: (ceAlpha ? w.wCe : 0) + (fallback ? w.wFb : 0) };
}

export function lossValue(sums: { kdSum: number; ceSum: number; fbSum: number }, l: KdLabels, o: KdLossOptions): KdLossValue {
  const { labelled, targeted, fallback, wKd, wCe, wFb } = lossWeights(l, o);
  return {
    loss: wKd * sums.kdSum + wCe * sums.ceSum + wFb * sums.fbSum, ...sums,
    kd: labelled > 0 ? sums.kdSum / labelled : NaN, ce: targeted > 0 ? sums.ceSum / targeted : NaN, labelled, targeted, fallback,
  };
}

/**
 * Loss of `logits` [N·V] against `labels`; when `grad` is given, writes d loss / d logits into it
 * (same layout). Accumulates in float64. The reference implementation (and the one off wasm).
 */
export function kdLossAndGrad(logits: Float32Array, V: number, labels: KdLabels, o: KdLossOptions, grad?: Float32Array): KdLossValue {
  const { N, K, topIds, topLogprobs } = labels;
  const tau = o.temperature;
  const invTau = 1 / tau;
  const w = lossWeights(labels, o);
  const row = newRowGrad(K);
  let kdSum = 0, ceSum = 0, fbSum = 0;
  for (let n = 0; n < N; n++) {
    const off = n * V;
    const r = rowWeights(labels, o, w, n);
    const tgt = labels.targets[n];
    if (!r.labelled && !r.ceAlpha && !r.fallback) {
      if (grad) grad.fill(0, off, off + V);
      continue;
    }
    let zmax = -Infinity;
    for (let v = 0; v < V; v++) if (logits[off + v] > zmax) zmax = logits[off + v];
    let sumT = 0;
    for (let v = 0; v < V; v++) sumT += Math.exp((logits[off + v] - zmax) * invTau);
    const lseT = zmax * invTau + Math.log(sumT); // log Σ exp(s)
    let lse1 = lseT;
    if (tgt >= 0 && tau !== 1) {
      let sum1 = 0;
      for (let v = 0; v < V; v++) sum1 += Math.exp(logits[off + v] - zmax);
      lse1 = zmax + Math.log(sum1);
    }
    if (r.labelled) kdSum += rowDivergence(logits, off, invTau, lseT, V, topIds, topLogprobs, n * K, K, tgt, o, row);
    if (tgt >= 0) {
      const ce = lse1 - logits[off + tgt];
      if (r.ceAlpha) ceSum += ce;
      if (r.fallback) fbSum += ce;
    }
    if (!grad) continue;
    // d loss/d z_v = wKd·τ·(∂D/∂s_v) + ce·(p1_v − [v = t]): the dense parts first, then the top-k ids
    // are written whole (not added to: q·f and the id's own value may nearly cancel).
    const cKd = r.labelled ? w.wKd * tau * row.f : 0; // τ²·(1/τ) = τ from s = z/τ
    for (let v = 0; v < V; v++) {
      grad[off + v] = cKd * Math.exp(logits[off + v] * invTau - lseT) + r.ce * Math.exp(logits[off + v] - lse1);
    }
    if (r.labelled) {
      for (let k = 0; k < K; k++) {
        if (!usable(topLogprobs[n * K + k])) continue;
        const id = topIds[n * K + k];
        grad[off + id] = w.wKd * tau * row.gk[k] + r.ce * Math.exp(logits[off + id] - lse1);
      }
      if (row.gt) grad[off + tgt] += w.wKd * tau * row.gt;
    }
    if (tgt >= 0) grad[off + tgt] -= r.ce;
  }
  return lossValue({ kdSum, ceSum, fbSum }, labels, o);
}

function rowHasLabel(lp: Float32Array, base: number, K: number): boolean {
  for (let k = 0; k < K; k++) if (usable(lp[base + k])) return true;
  return false;
}

export function newRowGrad(K: number): RowGrad {
  return { d: 0, f: 0, gk: new Float64Array(K), gt: 0 };
}

let scratchBuf = new Float64Array(0);
function scratch(n: number): Float64Array {
  if (scratchBuf.length < n) scratchBuf = new Float64Array(n);
  return scratchBuf;
}

/** The smallest student tail mass used in logs and ratios (q_tail = 1 − Σ q_k loses precision below). */
const MIN_Q_TAIL = 1e-6;
const LOG_MIN_PT = Math.log(1e-12);

/**
 * Divergence of one row (× τ², returned and in out.d) and its gradient w.r.t. s (÷ τ², see RowGrad).
 * z[off + v]·zScale is s_v, lseT = log Σ_v exp(s_v).
 */
export function rowDivergence(
  z: Float32Array, off: number, zScale: number, lseT: number, V: number,
  ids: Int32Array, lt: Float32Array, base: number, K: number, target: number,
  o: KdLossOptions, out: RowGrad,
): number {
  const tau2 = o.temperature * o.temperature;
  const invTau = 1 / o.temperature;
  const tail = o.missingMass === 'tail';
  const gk = out.gk;
  // scratch: [0, K) teacher log pt, [K, 2K) student log q
  const sc = scratch(2 * K);
  // teacher classes
  let used = 0, mass = 0, amax = -Infinity;
  for (let k = 0; k < K; k++) {
    if (!usable(lt[base + k])) continue;
    used++;
    mass += Math.exp(lt[base + k]);
    amax = Math.max(amax, lt[base + k] * invTau);
  }
  const R = 1 - mass;
  const aTail = tail && R > 1e-9 && V > used ? Math.log(R) * invTau + (1 - invTau) * Math.log(V - used) : -Infinity;
  amax = Math.max(amax, aTail);
  let tsum = Math.exp(aTail - amax);
  for (let k = 0; k < K; k++) if (usable(lt[base + k])) tsum += Math.exp(lt[base + k] * invTau - amax);
  const logZ = amax + Math.log(tsum);
  const logPtTail = aTail - logZ;
  const ptTail = Math.exp(logPtTail);
  // student classes
  let qSup = 0;
  for (let k = 0; k < K; k++) {
    if (!usable(lt[base + k])) continue;
    sc[k] = lt[base + k] * invTau - logZ;
    sc[K + k] = z[off + ids[base + k]] * zScale - lseT;
    qSup += Math.exp(sc[K + k]);
  }
  const qTail = Math.max(1 - qSup, MIN_Q_TAIL);
  const logQTail = Math.log(qTail);

  let d = 0;
  if (o.divergence === 'forward-kl') {
    for (let k = 0; k < K; k++) {
      if (!usable(lt[base + k])) { gk[k] = 0; continue; }
      const pt = Math.exp(sc[k]);
      d += pt * (sc[k] - sc[K + k]);
      gk[k] = Math.exp(sc[K + k]) - pt;
    }
    if (ptTail > 0) d += ptTail * (logPtTail - logQTail);
    out.f = 1 - ptTail / qTail;
  } else if (tail) {
    // class formulation over {top-k, tail} with the full-vocabulary student
    const b = o.beta;
    const rkl = o.divergence === 'reverse-kl';
    const classTerm = (logP: number, logQ: number): { d: number; g: number } => {
      const q = Math.exp(logQ);
      if (rkl) {
        const r = logQ - Math.max(logP, LOG_MIN_PT);
        return { d: q * r, g: r };
      }
      const p = Math.exp(logP);
      const logM = Math.log(b * p + (1 - b) * q);
      return { d: (p > 0 ? b * p * (logP - logM) : 0) + (q > 0 ? (1 - b) * q * (logQ - logM) : 0), g: (1 - b) * (logQ - logM) };
    };
    let mu = 0;
    for (let k = 0; k < K; k++) {
      if (!usable(lt[base + k])) { gk[k] = 0; continue; }
      const t = classTerm(sc[k], sc[K + k]);
      d += t.d;
      gk[k] = t.g; // g_k for now
      mu += Math.exp(sc[K + k]) * t.g;
    }
    const tt = classTerm(logPtTail, logQTail);
    d += tt.d;
    mu += qTail * tt.g;
    for (let k = 0; k < K; k++) if (usable(lt[base + k])) gk[k] = Math.exp(sc[K + k]) * (gk[k] - mu);
    out.f = tt.g - mu;
  } else {
    // renormalize: the student renormalised over the support, qs = softmax(s[id_k]) over usable k
    // (log Σ_k q_k with the max taken out: the q_k may all underflow)
    let lmax = -Infinity;
    for (let k = 0; k < K; k++) if (usable(lt[base + k])) lmax = Math.max(lmax, sc[K + k]);
    let lsum = 0;
    for (let k = 0; k < K; k++) if (usable(lt[base + k])) lsum += Math.exp(sc[K + k] - lmax);
    const logQs = lmax + Math.log(lsum);
    const b = o.beta;
    let mu = 0;
    for (let k = 0; k < K; k++) {
      if (!usable(lt[base + k])) { gk[k] = 0; continue; }
      const logQ = sc[K + k] - logQs;
      const q = Math.exp(logQ);
      let g: number;
      if (o.divergence === 'reverse-kl') {
        g = logQ - sc[k];
        d += q * g;
      } else {
        const p = Math.exp(sc[k]);
        const logM = Math.log(b * p + (1 - b) * q);
        d += (p > 0 ? b * p * (sc[k] - logM) : 0) + (q > 0 ? (1 - b) * q * (logQ - logM) : 0);
        g = (1 - b) * (logQ - logM);
      }
      gk[k] = g;
      mu += q * g;
    }
    for (let k = 0; k < K; k++) if (usable(lt[base + k])) gk[k] = Math.exp(sc[K + k] - logQs) * (gk[k] - mu);
    out.f = 0;
  }
  out.gt = 0;
  if (tail && o.tailTarget > 0 && target >= 0 && !inSupport(ids, lt, base, K, target)) {
    // the hard target inside the tail: −log(q_t / q_tail); ∂/∂s_v = q_v/q_tail − [v = t] outside the top-k
    d += o.tailTarget * (logQTail - (z[off + target] * zScale - lseT));
    out.f += o.tailTarget / qTail;
    out.gt = -o.tailTarget;
  }
  out.d = tau2 * d;
  return out.d;
}

function inSupport(ids: Int32Array, lt: Float32Array, base: number, K: number, id: number): boolean {
  for (let k = 0; k < K; k++) if (ids[base + k] === id && usable(lt[base + k])) return true;
  return false;
}

/** Fills in and checks loss options (a config file's, the CLI's): one clear error naming the field. */
export function resolveLossOptions(partial: Partial<KdLossOptions>, source = 'loss'): KdLossOptions {
  const o = { ...DEFAULT_LOSS, ...partial };
  if (!DIVERGENCES.includes(o.divergence)) {
    throw new KdError('bad-config', `${source}: divergence must be one of ${DIVERGENCES.join(', ')}, got "${o.divergence}"`);
  }
  if (!(o.temperature > 0 && Number.isFinite(o.temperature))) throw new KdError('bad-config', `${source}: temperature must be > 0, got ${o.temperature}`);
  if (!(o.alpha >= 0 && o.alpha <= 1)) throw new KdError('bad-config', `${source}: alpha must be in [0, 1], got ${o.alpha}`);
  if (o.divergence === 'jsd' && !(o.beta > 0 && o.beta < 1)) throw new KdError('bad-config', `${source}: beta must be in (0, 1), got ${o.beta}`);
  if (!MISSING_MASS.includes(o.missingMass)) throw new KdError('bad-config', `${source}: missingMass must be one of ${MISSING_MASS.join(', ')}, got "${o.missingMass}"`);
  if (!(o.unlabelledWeight >= 0 && Number.isFinite(o.unlabelledWeight))) throw new KdError('bad-config', `${source}: unlabelledWeight must be ≥ 0, got ${o.unlabelledWeight}`);
  if (!(o.tailTarget >= 0 && Number.isFinite(o.tailTarget))) throw new KdError('bad-config', `${source}: tailTarget must be ≥ 0, got ${o.tailTarget}`);
  return o;
}
