/**
 * The distillation loss as a differentiable tfjs op over the tied output head:
 *   loss = KD(teacher top-k ‖ softmax(h·wteᵀ / τ)) mixed with hard CE   (see kd-kernel.ts)
 * The forward pass also produces G = d loss / d logits, so the backward pass needs only two matmuls:
 *   dh   = G · wte               [N, V]·[V, d]
 *   dwte = Gᵀ · h               [V, N]·[N, d]
 * Two implementations of the forward, same numbers:
 *   - split (wasm, or wherever kd's native kernels run): the dense work — softmax rows, log-sum-exp,
 *     row scaling — in native passes (else wasm kernels: XNNPACK's softmax is ~4× faster than a JS exp
 *     loop, and log Σ exp(s) comes exactly from s_j − log P_j, see rowLse); JS touches only the k
 *     teacher ids and the target of each row, in place on the tensor memory.
 *   - elsewhere: one JS pass over the logits (kdLossAndGrad), float64 accumulation.
 */
import * as tf from '@tensorflow/tfjs';
import { KdError } from '../core/errors.js';
import { computeInto, inPlaceKernels, viewOf } from '../backend/io.js';
import {
  DIVERGENCES, MISSING_MASS, type Divergence, type KdLabels, type KdLossOptions, type KdLossValue, type MissingMass, DEFAULT_LOSS,
  kdLossAndGrad, resolveLossOptions, lossValue, lossWeights, newRowGrad, rowDivergence, rowWeights, usable,
} from './kd-kernel.js';

export { DIVERGENCES, MISSING_MASS, DEFAULT_LOSS, kdLossAndGrad, resolveLossOptions };
export type { Divergence, KdLabels, KdLossOptions, KdLossValue, MissingMass };


/**
 * Loss and G = d loss/d z for z = h·wᵀ, dense work by kernels (native, else wasm's), sparse part in JS
 * (see the header). Returns G as a tensor. JS touches only the k teacher ids and target of each row:
 *   1. P = softmax(s) for s = z/τ, and each row's log Σ exp(s)
 *   2. each labelled row's divergence and gradient factors from its k ids (rowDivergence)
 *   3. G = P scaled per row: wKd·τ·f for the ids outside the top-k (+ the hard CE weight when τ = 1)
 *   4. τ ≠ 1: G += (hard CE weight)·softmax(z)
 *   5. each top-k id's value written whole, and the CE weight taken off at each target
 */
function splitForward(h: tf.Tensor2D, w: tf.Tensor2D, l: KdLabels, o: KdLossOptions): { value: KdLossValue; g: tf.Tensor2D } {
  const tau = o.temperature;
  const V = w.shape[0];
  const { N, K, topIds: ids, topLogprobs: lt, targets } = l;
  const wts = lossWeights(l, o);
  let value!: KdLossValue;
  const g = tf.tidy(() => {
    const s = tf.matMul(tau === 1 ? h : tf.mul(h, 1 / tau), w, false, true) as tf.Tensor2D; // [N, V] logits / τ
    const native = inPlaceKernels();
    // 1.
    const lseT = new Float64Array(N), lse1 = new Float64Array(N);
    const ones = new Float32Array(N).fill(1);
    let G = native
      ? computeInto([N, V], [s], (out, [sv]) => native.softmaxRows(sv as Float32Array, out, lseT, 1, ones, false, V)) as tf.Tensor2D
      : tf.softmax(s);
    if (!native) {
      const sv = viewOf(s) as Float32Array, pv = viewOf(G) as Float32Array;
      for (let n = 0; n < N; n++) lseT[n] = rowLse(sv, pv, n * V, V, 1, ids, n * K, K, targets[n]);
    }
    // 2.
    const scale = new Float32Array(N), ceScale = new Float32Array(N);
    const gks = new Float64Array(N * K), gts = new Float64Array(N);
    const row = newRowGrad(K);
    const rows = Array.from({ length: N }, (_, n) => rowWeights(l, o, wts, n));
    let kdSum = 0, ceSum = 0, fbSum = 0, anyCe = false;
    {
      const sv = viewOf(s) as Float32Array;
      for (let n = 0; n < N; n++) {
        const r = rows[n];
        if (r.labelled) {
          kdSum += rowDivergence(sv, n * V, 1, lseT[n], V, ids, lt, n * K, K, targets[n], o, row);
          gks.set(row.gk, n * K);
          gts[n] = row.gt;
          scale[n] = wts.wKd * tau * row.f;
        }
        ceScale[n] = r.ce;
        anyCe ||= r.ce > 0;
        if (tau === 1) scale[n] += r.ce;
      }
    }
    // 3. and 4.
    if (native) {
      const gv = viewOf(G) as Float32Array;
      native.scaleRows(gv, scale, V);
      if (tau !== 1 && anyCe) native.softmaxRows(viewOf(s) as Float32Array, viewOf(G) as Float32Array, lse1, tau, ceScale, true, V);
    } else {
      G = tf.mul(G, tf.tensor2d(scale, [N, 1]));
      if (tau !== 1 && anyCe) {
        const P1 = tf.softmax(tf.mul(s, tau));
        G = tf.add(G, tf.mul(P1, tf.tensor2d(ceScale, [N, 1])));
        const sv = viewOf(s) as Float32Array, p1v = viewOf(P1) as Float32Array;
        for (let n = 0; n < N; n++) if (ceScale[n] > 0) lse1[n] = rowLse(sv, p1v, n * V, V, tau, ids, n * K, K, targets[n]);
      }
    }
    if (tau === 1) lse1.set(lseT);
    // 5. in place on G (ours alone)
    const sv = viewOf(s) as Float32Array;
    const gv = viewOf(G) as Float32Array;
    for (let n = 0; n < N; n++) {
      const off = n * V, r = rows[n];
      const q1 = (v: number) => (r.ce > 0 ? r.ce * Math.exp(sv[off + v] * tau - lse1[n]) : 0);
      if (r.labelled) {
        for (let k = 0; k < K; k++) {
          if (!usable(lt[n * K + k])) continue;
          const id = ids[n * K + k];
          gv[off + id] = wts.wKd * tau * gks[n * K + k] + q1(id);
        }
        if (gts[n]) gv[off + targets[n]] += wts.wKd * tau * gts[n];
      }
      const t = targets[n];
      if (r.ce > 0) {
        const ce = lse1[n] - sv[off + t] * tau;
        if (r.ceAlpha) ceSum += ce;
        if (r.fallback) fbSum += ce;
        gv[off + t] -= r.ce;
      }
    }
    value = lossValue({ kdSum, ceSum, fbSum }, l, o);
    return G as tf.Tensor2D;
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
