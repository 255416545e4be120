/**
 * The distillation loss as a differentiable tfjs op over the tied output head:
 *   loss = KD(teacher top-k ‖ softmax(h·wteᵀ / τ)) mixed with hard CE   (see kd-kernel.ts)
 * The forward pass also produces G = d loss / d logits, so the backward pass needs only two matmuls:
 *   dh   = G · wte               [N, V]·[V, d]
 *   dwte = Gᵀ · h               [V, N]·[N, d]
 * Two implementations of the forward, same numbers:
 *   - split (wasm, or wherever kd's native kernels run): the dense work — softmax rows, log-sum-exp,
 *     row scaling — in one native pass per softmax (else wasm kernels: XNNPACK's softmax is ~4× faster
 *     than a JS exp loop, and log Σ exp(s) comes exactly from s_j − log P_j, see rowLse); JS touches
 *     only the k teacher ids and the target of each row, in place on the tensor memory.
 *   - elsewhere: one JS pass over the logits (kdLossAndGrad), float64 accumulation.
 */
import * as tf from '@tensorflow/tfjs';
import { KdError } from '../errors.js';
import { computeInto, inPlaceKernels, viewOf } from '../backend/io.js';
import type { NativeKernels } from '../backend/native.js';
import {
  DIVERGENCES, type Divergence, type KdLabels, type KdLossOptions, type KdLossValue, DEFAULT_LOSS,
  isLabelled, kdLossAndGrad, lossValue, lossWeights, rowDivergence, usable,
} from './kd-kernel.js';

export { DIVERGENCES, DEFAULT_LOSS, kdLossAndGrad };
export type { Divergence, KdLabels, KdLossOptions, KdLossValue };

export function resolveLossOptions(partial: Partial<KdLossOptions>, source = 'loss'): KdLossOptions {
  const o = { ...DEFAULT_LOSS, ...partial };
  if (!DIVERGENCES.includes(o.divergence)) {
    throw new KdError('bad-config', `${source}: divergence must be one of ${DIVERGENCES.join(', ')}, got "${o.divergence}"`);
  }
  if (!(o.temperature > 0 && Number.isFinite(o.temperature))) throw new KdError('bad-config', `${source}: temperature must be > 0, got ${o.temperature}`);
  if (!(o.alpha >= 0 && o.alpha <= 1)) throw new KdError('bad-config', `${source}: alpha must be in [0, 1], got ${o.alpha}`);
  if (o.divergence === 'jsd' && !(o.beta > 0 && o.beta < 1)) throw new KdError('bad-config', `${source}: beta must be in (0, 1), got ${o.beta}`);
  return o;
}

/** The dense part of G and each row's log Σ exp, for the KD term (c = 1) and the hard loss (c = τ). */
interface Dense {
  g: tf.Tensor2D;
  lseKd(n: number): number;
  lseCe(n: number): number;
}

/**
 * Dense terms with kd's native kernels: one pass per softmax over the [N, V] logits/τ `s`, writing
 * G = scaleKd·softmax(s) (+ scaleCe·softmax(τ·s)) and each row's log-sum-exp.
 */
function nativeDense(k: NativeKernels, s: tf.Tensor2D, tau: number, scaleKd: Float32Array, scaleCe: Float32Array | null): Dense {
  const [N, V] = s.shape;
  const lseKd = new Float64Array(N), lseCe = new Float64Array(N);
  const g = computeInto([N, V], [s], (out, [sv]) => {
    k.softmaxRows(sv as Float32Array, out, lseKd, 1, scaleKd, false, V);
    if (scaleCe) k.softmaxRows(sv as Float32Array, out, lseCe, tau, scaleCe, true, V);
  }) as tf.Tensor2D;
  return { g, lseKd: (n) => lseKd[n], lseCe: (n) => lseCe[n] };
}

/**
 * Dense terms with wasm kernels (XNNPACK's softmax is ~4× faster than a JS exp loop). Student log-probs
 * stay exact: log Σ exp(s) comes from s_j − log P_j (rowLse). Allocates inside the caller's tidy.
 */
function wasmDense(s: tf.Tensor2D, tau: number, scaleKd: Float32Array, scaleCe: Float32Array | null, l: KdLabels): Dense {
  const [N, V] = s.shape;
  const { K, topIds: ids, targets } = l;
  const P = tf.softmax(s); // [N, V]
  const P1 = scaleCe && tau !== 1 ? tf.softmax(tf.mul(s, tau)) : P; // τ = 1 softmax for the hard loss
  let g = tf.mul(P, tf.tensor2d(scaleKd, [N, 1]));
  if (scaleCe) g = tf.add(g, tf.mul(P1, tf.tensor2d(scaleCe, [N, 1])));
  const sv = viewOf(s) as Float32Array, pv = viewOf(P) as Float32Array, p1v = viewOf(P1) as Float32Array;
  return {
    g: g as tf.Tensor2D,
    lseKd: (n) => rowLse(sv, pv, n * V, V, 1, ids, n * K, K, targets[n]),
    lseCe: (n) => rowLse(sv, p1v, n * V, V, tau, ids, n * K, K, targets[n]),
  };
}

/**
 * Loss and G = d loss/d z for z = h·wᵀ, dense part by kernels (native, else wasm's), sparse part in JS
 * (see the header). Returns G as a tensor. JS touches only the k teacher ids and target of each row.
 */
function splitForward(h: tf.Tensor2D, w: tf.Tensor2D, l: KdLabels, o: KdLossOptions): { value: KdLossValue; g: tf.Tensor2D } {
  const tau = o.temperature;
  const V = w.shape[0];
  const { N, K, topIds: ids, topLogprobs: lt, targets } = l;
  const wantCe = o.alpha > 0;
  const { wKd, wCe } = lossWeights(l, o);
  const fwd = o.divergence === 'forward-kl';
  let value!: KdLossValue;
  const g = tf.tidy(() => {
    const s = tf.matMul(tau === 1 ? h : tf.mul(h, 1 / tau), w, false, true) as tf.Tensor2D; // [N, V] logits / τ
    // The dense gradient is wKd·τ·softmax(s) on labelled rows for forward KL (the other divergences'
    // gradients live on the k ids alone), plus wCe·softmax(τ·s) on rows with a target.
    const scaleKd = new Float32Array(N);
    const scaleCe = wantCe ? new Float32Array(N) : null;
    for (let n = 0; n < N; n++) {
      if (fwd && isLabelled(l, n)) scaleKd[n] = wKd * tau;
      if (scaleCe && targets[n] >= 0) scaleCe[n] = wCe;
    }
    const native = inPlaceKernels();
    const dense = native ? nativeDense(native, s, tau, scaleKd, scaleCe) : wasmDense(s, tau, scaleKd, scaleCe, l);
    // Sparse part, in place on G (ours alone): the k teacher ids and the target of each row.
    const sv = viewOf(s) as Float32Array;
    const gv = viewOf(dense.g) as Float32Array;
    const pt = new Float64Array(K), gk = new Float64Array(K);
    let kdSum = 0, ceSum = 0;
    for (let n = 0; n < N; n++) {
      const off = n * V;
      if (isLabelled(l, n)) {
        kdSum += rowDivergence(sv, off, 1, dense.lseKd(n), ids, lt, n * K, K, o, pt, gk);
        for (let k = 0; k < K; k++) if (usable(lt[n * K + k])) gv[off + ids[n * K + k]] += wKd * tau * gk[k];
      }
      const t = wantCe ? targets[n] : -1;
      if (t >= 0) {
        ceSum += dense.lseCe(n) - sv[off + t] * tau;
        gv[off + t] -= wCe;
      }
    }
    value = lossValue(kdSum, ceSum, l, o);
    return dense.g;
  });
  return { value, g };
}

/**
 * log Σ_v exp(c·s_v) of one row from its softmax P: for any j, lse = c·s_j − log P_j, exact to float32
 * rounding while P_j is a normal float. Take j among the row's teacher ids and target (the likeliest
 * of them), and scan the row for its largest P only when all of those underflow.
 */
function rowLse(s: Float32Array, P: Float32Array, off: number, V: number, c: number, ids: Int32Array, base: number, K: number, t: number): number {
  let j = t >= 0 ? t : ids[base];
  for (let k = 0; k < K; k++) if (P[off + ids[base + k]] > P[off + j]) j = ids[base + k];
  if (!(P[off + j] > 1e-30)) for (let v = 0; v < V; v++) if (P[off + v] > P[off + j]) j = v;
  return c * s[off + j] - Math.log(P[off + j]);
}

/** Loss and G on any backend: one JS pass over the logits. */
function jsForward(h: tf.Tensor2D, w: tf.Tensor2D, l: KdLabels, o: KdLossOptions): { value: KdLossValue; g: tf.Tensor2D } {
  const logits = tf.matMul(h, w, false, true); // [N, V]
  let value!: KdLossValue;
  const g = computeInto(logits.shape, [logits], (out, [z]) => {
    value = kdLossAndGrad(z as Float32Array, w.shape[0], l, o, out);
  }) as tf.Tensor2D;
  logits.dispose();
  return { value, g };
}

/**
 * Distillation loss of hidden states against the teacher, through the tied head.
 *   hidden: [N, d], wte: [V, d] → scalar. `stats` receives the loss parts of this call.
 */
export function headKdLoss(hidden: tf.Tensor2D, wte: tf.Tensor2D, labels: KdLabels, o: KdLossOptions, stats?: (v: KdLossValue) => void): tf.Scalar {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [h, w, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
    const { value, g } = (tf.getBackend() === 'wasm' || inPlaceKernels() ? splitForward : jsForward)(h, w, labels, o);
    stats?.(value);
    // G is [N, V]: hand it to the backward pass by reference (save() would copy it) and free it
    // there; when no gradient is being recorded, free it now.
    const recording = (tf.engine().state as unknown as { gradientDepth: number }).gradientDepth > 0;
    if (recording) tf.keep(g);
    else g.dispose();
    save([h, w]);
    return {
      value: tf.scalar(value.loss),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [hs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
        const scale = dy.dataSync()[0]; // the upstream gradient is a scalar, 1 unless the loss was scaled
        const gy = scale === 1 ? g : (tf.mul(g, scale) as tf.Tensor2D);
        const dh = tf.matMul(gy, ws); // [N, d]
        const dw = tf.matMul(gy, hs, true, false); // Gᵀ·h = [V, d]
        g.dispose();
        if (gy !== g) gy.dispose();
        return [dh, dw];
      },
    };
  });
  return op(hidden, wte) as tf.Scalar;
}

/** Loss value only (validation): no gradient buffer is written. */
export function evalKdLoss(hidden: tf.Tensor2D, wte: tf.Tensor2D, labels: KdLabels, o: KdLossOptions): KdLossValue {
  const logits = tf.matMul(hidden, wte, false, true);
  try {
    return kdLossAndGrad(logits.dataSync() as Float32Array, wte.shape[0], labels, o);
  } finally {
    logits.dispose();
  }
}
