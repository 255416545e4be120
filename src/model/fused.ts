/**
 * LayerNorm and GELU as single differentiable ops over kd's native kernels: one pass over memory each
 * way instead of the ~10 tfjs ops (and their saved intermediates) of the compositions in gpt.ts, which
 * stay the reference and the fallback. Each function returns null when the native kernels cannot run on
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
