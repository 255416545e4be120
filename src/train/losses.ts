/**
 * The distillation loss as a differentiable tfjs op over the tied output head:
 *   loss = KD(teacher top-k ‖ softmax(h·wteᵀ / τ)) mixed with hard CE   (see kd-kernel.ts)
 * Forward and gradient come from the fused kernel in one pass over the [N, V] logits; the backward
 * pass then needs only two matmuls, both on the fast untransposed path:
 *   dh   = G · wte               [N, V]·[V, d]
 *   dwte = (hᵀ · G)ᵀ             transpose the small [N, d] and [d, V] sides, never the [N, V] one
 */
import * as tf from '@tensorflow/tfjs';
import { KdError } from '../errors.js';
import { computeInto } from '../backend/io.js';
import { DIVERGENCES, type Divergence, type KdLabels, type KdLossOptions, type KdLossValue, DEFAULT_LOSS, kdLossAndGrad } from './kd-kernel.js';

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

/**
 * Distillation loss of hidden states against the teacher, through the tied head.
 *   hidden: [N, d], wte: [V, d] → scalar. `stats` receives the loss parts of this call.
 */
export function headKdLoss(hidden: tf.Tensor2D, wte: tf.Tensor2D, labels: KdLabels, o: KdLossOptions, stats?: (v: KdLossValue) => void): tf.Scalar {
  const V = wte.shape[0];
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [h, w, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const logits = tf.matMul(h as tf.Tensor2D, w as tf.Tensor2D, false, true); // [N, V]
    let value!: KdLossValue;
    const g = computeInto(logits.shape, [logits], (out, [z]) => {
      value = kdLossAndGrad(z as Float32Array, V, labels, o, out);
    });
    logits.dispose();
    stats?.(value);
    save([h, w, g]);
    return {
      value: tf.scalar(value.loss),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [hs, ws, gs] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
        const gy = tf.mul(gs, dy) as tf.Tensor2D; // dy is the scalar upstream gradient (1 unless scaled)
        const dh = tf.matMul(gy, ws); // [N, d]
        const dw = tf.transpose(tf.matMul(tf.transpose(hs), gy)); // [d, V]ᵀ = [V, d]
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
