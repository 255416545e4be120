import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.js';
import { nativeKernels, setNativeEnabled } from '../../src/backend/native.js';
import { headKdLoss, resolveLossOptions, type Divergence, type KdLabels, type MissingMass } from '../../src/train/losses.js';
import { Rng } from '../../src/core/rng.js';

/**
 * The split forward (dense softmax by kd's native kernels or by wasm's, sparse part in JS) against the
 * float64 JS kernel on the cpu backend without native kernels.
 */
function labels(N: number, V: number, K: number, r: Rng): KdLabels {
  const topIds = new Int32Array(N * K), topLogprobs = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    const ids = new Set<number>();
    while (ids.size < K) ids.add(r.int(V));
    [...ids].forEach((id, k) => { topIds[n * K + k] = id; topLogprobs[n * K + k] = -0.3 * k - r.next() - (n % 2 ? 0.8 : 0); }); // odd rows leave a tail
  }
  topLogprobs[3] = -9999;
  const mask = new Float32Array(N).fill(1);
  mask[1] = 0;
  const targets = Int32Array.from({ length: N }, (_, n) => (n % 3 === 0 ? -1 : r.int(V)));
  return { N, K, topIds, topLogprobs, mask, targets, counts: { labelled: N + 3, targeted: N, fallback: 2 } };
}

beforeAll(async () => { await initBackend({ backend: 'wasm' }); });

const paths: [string, string, boolean][] = [['wasm', 'wasm softmax', false], ...(nativeKernels() ? [['wasm', 'native', true], ['cpu', 'native', true]] as [string, string, boolean][] : [])];

describe.each(paths)('headKdLoss on %s (%s) matches the JS kernel on cpu', (backend, _what, native) => {
  const cases: [Divergence, MissingMass, number, number][] = [
    ['forward-kl', 'tail', 2, 0], ['forward-kl', 'tail', 1, 0.4], ['forward-kl', 'renormalize', 2, 0], ['forward-kl', 'renormalize', 1, 0.4],
    ['reverse-kl', 'tail', 1.5, 0.2], ['reverse-kl', 'renormalize', 1.5, 0.2], ['jsd', 'tail', 2, 0.5], ['jsd', 'renormalize', 2, 0],
  ];
  it.each(cases)('%s, %s, T=%d alpha=%d', async (divergence, missingMass, temperature, alpha) => {
    const N = 24, V = 300, d = 16, K = 5;
    const r = new Rng(42);
    const H = Float32Array.from({ length: N * d }, () => r.normal() * 2);
    for (let j = 0; j < d; j++) H[2 * d + j] *= 60; // one row so peaked that most of its softmax underflows
    const W = Float32Array.from({ length: V * d }, () => r.normal());
    const l = labels(N, V, K, r);
    // Row 2's teacher ids and target: its least likely tokens, whose probabilities underflow float32.
    const z2 = Array.from({ length: V }, (_, v) => { let z = 0; for (let j = 0; j < d; j++) z += H[2 * d + j] * W[v * d + j]; return z; });
    const low = [...z2.keys()].sort((a, b) => z2[a] - z2[b]);
    for (let k = 0; k < K; k++) l.topIds[2 * K + k] = low[k];
    l.targets[2] = low[K];
    const o = resolveLossOptions({ divergence, temperature, alpha, beta: 0.4, missingMass, unlabelledWeight: 0.7, tailTarget: 0.5 });
    const run = async (backend: string, native: boolean) => {
      await tf.setBackend(backend);
      setNativeEnabled(native);
      const before = tf.memory().numTensors;
      const h = tf.tensor2d(H, [N, d]), w = tf.tensor2d(W, [V, d]);
      const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => headKdLoss(a as tf.Tensor2D, b as tf.Tensor2D, l, o))([h, w]);
      const out = { loss: value.dataSync()[0], gh: grads[0].dataSync().slice() as Float32Array, gw: grads[1].dataSync().slice() as Float32Array };
      tf.dispose([h, w, value, ...grads]);
      expect(tf.memory().numTensors).toBe(before);
      return out;
    };
    const b = await run('cpu', false);
    const a = await run(backend, native);
    setNativeEnabled(true);
    expect(a.loss).toBeGreaterThan(0);
    expect(Math.abs(a.loss - b.loss) / b.loss).toBeLessThan(1e-5);
    const maxDiff = (x: Float32Array, y: Float32Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
    const scale = (x: Float32Array) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(maxDiff(a.gh, b.gh) / scale(b.gh)).toBeLessThan(1e-4);
    expect(maxDiff(a.gw, b.gw) / scale(b.gw)).toBeLessThan(1e-4);
  });
});
