/**
 * AdamW with decoupled weight decay (Loshchilov & Hutter 2019), as torch.optim.AdamW:
 *   p ← p − lr·wd·p;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
 *   p ← p − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)
 * Weight decay applies to matrices and embeddings (rank ≥ 2), not to LayerNorm gains and biases.
 * Plus global-norm gradient clipping and a warm-up + cosine learning-rate schedule.
 */
import * as tf from '@tensorflow/tfjs';
import { inPlaceKernels, viewOf, writableView } from '../backend/io.js';
import { nativeKernels } from '../backend/native.js';
import type { Params } from '../model/gpt.js';

export interface AdamWConfig {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export interface AdamWState {
  /** number of updates applied so far */
  t: number;
  m: Map<string, tf.Variable>;
  v: Map<string, tf.Variable>;
}

export function initAdamW(params: Params): AdamWState {
  const m = new Map<string, tf.Variable>();
  const v = new Map<string, tf.Variable>();
  for (const [name, p] of params) {
    // tf.variable takes its own reference to the initial value's data: free the temporary tensors
    // (they leaked 2 tensors per weight)
    for (const moments of [m, v]) {
      const z = tf.zerosLike(p);
      moments.set(name, tf.variable(z, false));
      z.dispose();
    }
  }
  return { t: 0, m, v };
}

export function disposeAdamW(s: AdamWState): void {
  for (const x of [...s.m.values(), ...s.v.values()]) x.dispose();
}

/**
 * Gradients laid out flat, one after the other in the order of `params` (as workers exchange them).
 * Consumes (disposes) the tensors; a weight without a gradient gets zeros.
 */
export function flattenGrads(params: Params, grads: Map<string, tf.Tensor>, out?: Float32Array): Float32Array {
  let size = 0;
  for (const p of params.values()) size += p.size;
  const flat = out ?? new Float32Array(size);
  let off = 0;
  for (const [name, p] of params) {
    const g = grads.get(name);
    if (g) flat.set(viewOf(g) as Float32Array, off);
    else flat.fill(0, off, off + p.size);
    off += p.size;
  }
  tf.dispose([...grads.values()]);
  return flat;
}

/** Global L2 norm of flat gradients, accumulated in float64 (the same value in every worker). */
export function globalNorm(flat: Float32Array): number {
  const native = nativeKernels();
  if (native) return Math.sqrt(native.sumSquares(flat));
  let s = 0;
  for (let i = 0; i < flat.length; i++) s += flat[i] * flat[i];
  return Math.sqrt(s);
}

/** dst += src, elementwise (workers summing their gradients) */
export function addInto(dst: Float32Array, src: Float32Array): void {
  const native = nativeKernels();
  if (native) return native.addInto(dst, src);
  for (let i = 0; i < dst.length; i++) dst[i] += src[i];
}

/**
 * Gradient scale for global-norm clipping, as torch.nn.utils.clip_grad_norm_: maxNorm / (norm + 1e-6),
 * capped at 1; 1 when clipping is off or the norm is not finite.
 */
export function clipCoefficient(norm: number, maxNorm: number): number {
  if (!(maxNorm > 0) || !Number.isFinite(norm)) return 1;
  return Math.min(1, maxNorm / (norm + 1e-6));
}

/**
 * One AdamW update at learning rate `lr` from flat gradients (see flattenGrads), each multiplied by
 * `scale` (the clipping coefficient). On wasm and cpu it is one fused pass per weight over the tensors'
 * memory (weights and moments are ours alone), native when kd's kernels are built, else JS; elsewhere,
 * tfjs ops.
 */
export function adamWStep(params: Params, flat: Float32Array, s: AdamWState, c: AdamWConfig, lr: number, scale = 1): void {
  s.t += 1;
  const bc1 = 1 - Math.pow(c.beta1, s.t);
  const bc2 = 1 - Math.pow(c.beta2, s.t);
  const { beta1: b1, beta2: b2, eps } = c;
  const native = inPlaceKernels();
  let off = 0;
  for (const [name, p] of params) {
    const g = flat.subarray(off, off + p.size);
    off += p.size;
    const m = s.m.get(name)!;
    const v = s.v.get(name)!;
    const decay = c.weightDecay > 0 && p.rank >= 2 ? 1 - lr * c.weightDecay : 1;
    const pv = writableView(p), mv = writableView(m), vv = writableView(v);
    if (pv && mv && vv && native) {
      native.adamw(pv, mv, vv, g, lr / bc1, 1 / bc2, b1, b2, eps, decay, scale);
      continue;
    }
    if (pv && mv && vv) {
      const step = lr / bc1, rbc2 = 1 / bc2;
      for (let i = 0; i < g.length; i++) {
        const gi = g[i] * scale;
        const mi = b1 * mv[i] + (1 - b1) * gi;
        const vi = b2 * vv[i] + (1 - b2) * gi * gi;
        mv[i] = mi;
        vv[i] = vi;
        pv[i] = pv[i] * decay - (step * mi) / (Math.sqrt(vi * rbc2) + eps);
      }
      continue;
    }
    tf.tidy(() => {
      const gt = tf.mul(tf.tensor(g, p.shape), scale);
      const m1 = tf.add(tf.mul(m, b1), tf.mul(gt, 1 - b1));
      const v1 = tf.add(tf.mul(v, b2), tf.mul(tf.square(gt), 1 - b2));
      const update = tf.div(tf.div(m1, bc1), tf.add(tf.sqrt(tf.div(v1, bc2)), eps));
      m.assign(m1);
      v.assign(v1);
      p.assign(tf.sub(tf.mul(p, decay), tf.mul(update, lr)));
    });
  }
}

export interface ScheduleConfig {
  lr: number;
  minLr: number;
  warmupSteps: number;
  steps: number;
}

/** Linear warm-up over warmupSteps, then cosine decay from lr to minLr at the last step. */
export function learningRate(step: number, c: ScheduleConfig): number {
  if (step < c.warmupSteps) return (c.lr * (step + 1)) / c.warmupSteps;
  const span = Math.max(1, c.steps - c.warmupSteps);
  const progress = Math.min(1, (step - c.warmupSteps) / span);
  return c.minLr + 0.5 * (c.lr - c.minLr) * (1 + Math.cos(Math.PI * progress));
}
