/**
 * LayerNorm, GELU and causal attention as single differentiable ops over kd's native kernels: one pass
 * over memory each way instead of the ~10 tfjs ops (and their saved intermediates, head transposes,
 * splits) of the compositions in gpt.ts, which stay the reference and the fallback. Each function returns null when the native kernels cannot run on
 * the current backend; the caller then composes tfjs ops.
 */
import * as tf from '@tensorflow/tfjs';
import { computeInto, inPlaceKernels } from '../backend/io.js';

/** LayerNorm over the last axis of x [N, d] with gain g [d] and bias b [d]. */
export function fusedLayerNorm(x: tf.Tensor2D, g: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor2D | null {
  const k = inPlaceKernels();
  if (!k) return null;
  const [N, d] = x.shape;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xs, gs, bs, save] = args as [tf.Tensor2D, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const mean = new Float32Array(N), rstd = new Float32Array(N);
    const y = computeInto([N, d], [xs, gs, bs], (out, [xv, gv, bv]) =>
      k.layerNormForward(xv as Float32Array, gv as Float32Array, bv as Float32Array, out, mean, rstd, d, eps));
    save([xs, gs]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const dg = new Float32Array(d), db = new Float32Array(d);
        const dx = computeInto([N, d], [dy, ...saved], (out, [dyv, xv, gv]) =>
          k.layerNormBackward(dyv as Float32Array, xv as Float32Array, gv as Float32Array, mean, rstd, out, dg, db, d));
        return [dx, tf.tensor(dg, g.shape), tf.tensor(db, b.shape)];
      },
    };
  });
  return op(x, g, b) as tf.Tensor2D;
}

/** Exact GELU, 0.5·x·(1 + erf(x/√2)). */
export function fusedGelu(x: tf.Tensor): tf.Tensor | null {
  const k = inPlaceKernels();
  if (!k) return null;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xs, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const y = computeInto(xs.shape, [xs], (out, [xv]) => k.geluForward(xv as Float32Array, out));
    save([xs]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        computeInto(dy.shape, [saved[0], dy], (out, [xv, dyv]) => k.geluBackward(xv as Float32Array, dyv as Float32Array, out)),
    };
  });
  return op(x);
}

/**
 * How fusedAttention keeps what its backward pass needs: 'recompute' (the default when the native
 * kernels have it) keeps each query row's softmax max and 1/sum, B·H·T·2 floats, and recomputes the
 * probabilities a row at a time in the backward pass; 'probabilities' keeps them all, B·H·T² floats
 * a layer (134 MB a layer at B 16, 8 heads, T 512). Both give the same values bit for bit; the
 * recompute costs one more q·kᵀ row product and exp per row in the backward pass.
 */
export type AttentionMemory = 'recompute' | 'probabilities';
let attentionMemory: AttentionMemory = process.env.KD_ATTENTION_MEMORY === 'probabilities' ? 'probabilities' : 'recompute';
export function setAttentionMemory(m: AttentionMemory): void {
  attentionMemory = m;
}

/**
 * Causal multi-head self-attention from the fused projection qkv [B·T, 3·H·hd] (q | k | v per row, heads
 * side by side) to the heads' outputs side by side, [B·T, H·hd], before the output projection.
 */
export function fusedAttention(qkv: tf.Tensor2D, B: number, T: number, H: number, hd: number): tf.Tensor2D | null {
  const k = inPlaceKernels();
  if (!k) return null;
  const scale = 1 / Math.sqrt(hd);
  const recompute = attentionMemory === 'recompute' && k.attentionForwardStats && k.attentionBackwardRecompute;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    save([x]);
    if (recompute) {
      const stats = new Float32Array(B * H * T * 2); // per query row: softmax max and 1/sum
      const y = computeInto([B * T, H * hd], [x], (out, [xv]) => k.attentionForwardStats!(xv as Float32Array, out, stats, B, T, H, hd, scale));
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          computeInto([B * T, 3 * H * hd], [saved[0], dy], (out, [xv, dyv]) =>
            k.attentionBackwardRecompute!(xv as Float32Array, stats, dyv as Float32Array, out, B, T, H, hd, scale)),
      };
    }
    const P = new Float32Array(B * H * T * T); // probabilities, for the backward pass
    const y = computeInto([B * T, H * hd], [x], (out, [xv]) => k.attentionForward(xv as Float32Array, out, P, B, T, H, hd, scale));
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        computeInto([B * T, 3 * H * hd], [saved[0], dy], (out, [xv, dyv]) =>
          k.attentionBackward(xv as Float32Array, P, dyv as Float32Array, out, B, T, H, hd, scale)),
    };
  });
  return op(qkv) as tf.Tensor2D;
}
