import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { nativeKernels, setNativeEnabled } from '../../src/backend/native.js';
import { resolveModelConfig } from '../../src/model/config.js';
import { fusedAttention, fusedGelu, fusedLayerNorm, setAttentionMemory } from '../../src/model/fused.js';
import { disposeModel, forwardHidden, initModel } from '../../src/model/gpt.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { computeGradients } from '../../src/train/step.js';
import { syntheticTeacher } from '../../src/data/synthetic.js';
import { Rng } from '../../src/core/rng.js';

/**
 * The fused LayerNorm and GELU (kd's native kernels) against the tfjs compositions they replace, value
 * and gradients, on both backends they run on; then a whole training step with and without them.
 */
const native = nativeKernels();
const backends = native ? ['cpu', 'wasm'] : [];

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  await import('@tensorflow/tfjs-backend-cpu');
});
afterEach(() => { setNativeEnabled(true); setAttentionMemory('recompute'); });

const r = new Rng(3);
const randT = (shape: number[], scale = 1, shift = 0) =>
  tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r.normal() * scale + shift), shape);

function compositeLayerNorm(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), g), b);
}
/** causal attention from a fused qkv, composed of tfjs ops with an additive mask as gpt.ts does */
function compositeAttention(qkv: tf.Tensor, B: number, T: number, H: number, hd: number): tf.Tensor {
  const heads = (z: tf.Tensor) => tf.reshape(tf.transpose(tf.reshape(z, [B, T, H, hd]), [0, 2, 1, 3]), [B * H, T, hd]);
  const [q, k, v] = tf.split(qkv, 3, 1).map(heads);
  const mask = tf.mul(tf.sub(tf.linalg.bandPart(tf.ones([T, T]), -1, 0), 1), 1e9);
  const y = tf.matMul(tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)), mask)), v);
  return tf.reshape(tf.transpose(tf.reshape(y, [B, H, T, hd]), [0, 2, 1, 3]), [B * T, H * hd]);
}
const compositeGelu = (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let m = 0, s = 0;
  for (let i = 0; i < a.length; i++) { m = Math.max(m, Math.abs(a[i] - b[i])); s = Math.max(s, Math.abs(b[i])); }
  return m / s;
}

/** value and gradients of Σ w ⊙ f(inputs) for fixed random w, as plain arrays */
function valueAndGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], w: tf.Tensor): Float32Array[] {
  return tf.tidy(() => {
    const y = f(...inputs);
    const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), w)))(inputs);
    return [y, ...grads].map((t) => t.dataSync().slice() as Float32Array);
  });
}

describe.each(backends)('fused ops on %s', (backend) => {
  it('LayerNorm: same values and gradients (x, gain, bias) as the tfjs composition', async () => {
    await tf.setBackend(backend);
    const [N, d] = [37, 24];
    const x = randT([N, d], 3, 1.5), g = randT([d], 0.5, 1), b = randT([d], 0.2), w = randT([N, d]);
    expect(fusedLayerNorm(x as tf.Tensor2D, g, b, 1e-5)).not.toBeNull();
    const fused = valueAndGrads((xx, gg, bb) => fusedLayerNorm(xx as tf.Tensor2D, gg, bb, 1e-5)!, [x, g, b], w);
    const ref = valueAndGrads((xx, gg, bb) => compositeLayerNorm(xx, gg, bb, 1e-5), [x, g, b], w);
    fused.forEach((f, i) => expect(maxRelDiff(f, ref[i])).toBeLessThan(1e-5));
    tf.dispose([x, g, b, w]);
  });

  it('GELU: same values and gradient as the tfjs composition, over the range that matters', async () => {
    await tf.setBackend(backend);
    const x = tf.linspace(-9, 9, 1001), w = randT([1001]);
    const fused = valueAndGrads((xx) => fusedGelu(xx)!, [x], w);
    const ref = valueAndGrads(compositeGelu, [x], w);
    fused.forEach((f, i) => expect(maxRelDiff(f, ref[i])).toBeLessThan(2e-6));
    tf.dispose([x, w]);
  });

  it('causal attention: same values and gradient as the tfjs composition (odd sizes, T = 1 too)', async () => {
    await tf.setBackend(backend);
    for (const [B, T, H, hd] of [[2, 7, 3, 5], [1, 1, 2, 4], [3, 33, 2, 16]]) {
      const qkv = randT([B * T, 3 * H * hd], 1.5), w = randT([B * T, H * hd]);
      const fused = valueAndGrads((x) => fusedAttention(x as tf.Tensor2D, B, T, H, hd)!, [qkv], w);
      const ref = valueAndGrads((x) => compositeAttention(x, B, T, H, hd), [qkv], w);
      fused.forEach((f, i) => expect(maxRelDiff(f, ref[i])).toBeLessThan(1e-5));
      tf.dispose([qkv, w]);
    }
  });

  it('causal attention keeping only row statistics (recomputing probabilities in backward): bit for bit the version keeping them all', async () => {
    await tf.setBackend(backend);
    expect(native!.attentionForwardStats).toBeTypeOf('function');
    for (const [B, T, H, hd] of [[2, 7, 3, 5], [1, 1, 2, 4], [2, 130, 2, 16]]) {
      const qkv = randT([B * T, 3 * H * hd], 1.5), w = randT([B * T, H * hd]);
      setAttentionMemory('probabilities');
      const kept = valueAndGrads((x) => fusedAttention(x as tf.Tensor2D, B, T, H, hd)!, [qkv], w);
      setAttentionMemory('recompute');
      const recomputed = valueAndGrads((x) => fusedAttention(x as tf.Tensor2D, B, T, H, hd)!, [qkv], w);
      const ref = valueAndGrads((x) => compositeAttention(x, B, T, H, hd), [qkv], w);
      recomputed.forEach((f, i) => {
        expect(Array.from(f)).toEqual(Array.from(kept[i])); // the same operations in the same order
        expect(maxRelDiff(f, ref[i])).toBeLessThan(1e-5);
      });
      tf.dispose([qkv, w]);
    }
  });

  it('a whole training step: same loss and gradients with and without the native kernels', async () => {
    await tf.setBackend(backend);
    const model = resolveModelConfig({ vocabSize: 64, seqLen: 16, dModel: 32, nLayers: 2, nHeads: 4 });
    const c = resolveTrainConfig({ batchSize: 3, seqLen: 16, loss: { divergence: 'forward-kl', temperature: 2, alpha: 0.3 } });
    const batch = syntheticTeacher({ vocabSize: 64, seqLen: 16, batchSize: 3, topK: 5, seed: 4 }).open().next();
    const counts = { labelled: 48, targeted: 48, fallback: 0 };
    const run = (on: boolean, warmUp = false) => {
      setNativeEnabled(on);
      const m = initModel(model, 5);
      const before = tf.memory().numTensors;
      const g = computeGradients(m, [batch], c, counts);
      const out = { loss: g.loss, grads: [...g.grads.values()].map((t) => t.dataSync().slice() as Float32Array) };
      tf.dispose([...g.grads.values()]);
      if (!warmUp) expect(tf.memory().numTensors).toBe(before); // no leaks on either path
      disposeModel(m);
      return out;
    };
    run(false, true); // warm-up: the causal mask is cached per length on first use
    const ref = run(false);
    const fused = run(true);
    expect(Math.abs(fused.loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
    expect(fused.grads.length).toBe(ref.grads.length);
    fused.grads.forEach((f, i) => expect(maxRelDiff(f, ref.grads[i])).toBeLessThan(1e-4));
  });
});

describe('without native kernels', () => {
  it('the fused ops step aside and the model composes tfjs ops', async () => {
    await tf.setBackend('cpu');
    setNativeEnabled(false);
    const x = randT([4, 8]);
    expect(fusedLayerNorm(x as tf.Tensor2D, tf.ones([8]), tf.zeros([8]), 1e-5)).toBeNull();
    expect(fusedGelu(x)).toBeNull();
    expect(fusedAttention(randT([4, 24]) as tf.Tensor2D, 1, 4, 2, 4)).toBeNull();
    const m = initModel(resolveModelConfig({ vocabSize: 16, seqLen: 4, dModel: 8, nLayers: 1, nHeads: 2 }), 1);
    const h = forwardHidden(m, tf.tensor2d([[1, 2, 3, 4]], [1, 4], 'int32'));
    expect(h.shape).toEqual([4, 8]);
    tf.dispose([x, h]);
    disposeModel(m);
  });
});
