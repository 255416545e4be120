/**
 * AdamW with decoupled weight decay (Loshchilov & Hutter 2019), as torch.optim.AdamW:
 *   p ← p − lr·wd·p;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
 *   p ← p − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)
 * Weight decay applies to matrices and embeddings (rank ≥ 2), not to LayerNorm gains and biases.
 * Plus global-norm gradient clipping and a warm-up + cosine learning-rate schedule.
 */
import * as tf from '@tensorflow/tfjs';
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

/** One AdamW update at learning rate `lr`; grads are consumed (disposed). */
export function adamWStep(params: Params, grads: Map<string, tf.Tensor>, s: AdamWState, c: AdamWConfig, lr: number): void {
  s.t += 1;
  const bc1 = 1 - Math.pow(c.beta1, s.t);
  const bc2 = 1 - Math.pow(c.beta2, s.t);
  for (const [name, p] of params) {
    const g = grads.get(name);
    if (!g) continue;
    const m = s.m.get(name)!;
    const v = s.v.get(name)!;
    tf.tidy(() => {
      const m1 = tf.add(tf.mul(m, c.beta1), tf.mul(g, 1 - c.beta1));
      const v1 = tf.add(tf.mul(v, c.beta2), tf.mul(tf.square(g), 1 - c.beta2));
      const decayed = c.weightDecay > 0 && p.rank >= 2 ? tf.mul(p, 1 - lr * c.weightDecay) : p;
      const update = tf.div(tf.div(m1, bc1), tf.add(tf.sqrt(tf.div(v1, bc2)), c.eps));
      m.assign(m1);
      v.assign(v1);
      p.assign(tf.sub(decayed, tf.mul(update, lr)));
    });
  }
  tf.dispose([...grads.values()]);
}

/**
 * Scale gradients so their global L2 norm is at most maxNorm (torch.nn.utils.clip_grad_norm_:
 * coefficient maxNorm / (norm + 1e-6), capped at 1). Returns the norm before clipping.
 * Replaces the entries of `grads` in place.
 */
export function clipGlobalNorm(grads: Map<string, tf.Tensor>, maxNorm: number): number {
  const norm = Math.sqrt(tf.tidy(() => tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))).dataSync()[0]));
  if (maxNorm > 0 && Number.isFinite(norm)) {
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) {
      for (const [name, g] of grads) {
        grads.set(name, tf.mul(g, coef));
        g.dispose();
      }
    }
  }
  return norm;
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
