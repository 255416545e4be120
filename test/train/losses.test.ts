import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { kdLossAndGrad, headKdLoss, resolveLossOptions, type KdLabels, type KdLossOptions, type Divergence } from '../../src/train/losses.js';
import { KdError } from '../../src/errors.js';

/** Independent float64 reference, written straight from the definitions. */
function reference(z: number[][], lab: KdLabels, o: KdLossOptions): number {
  const tau = o.temperature;
  const lse = (xs: number[]) => { const m = Math.max(...xs); return m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0)); };
  let kdSum = 0, kdN = 0, ceSum = 0, ceN = 0;
  z.forEach((row, n) => {
    const s = row.map((x) => x / tau);
    const ls = s.map((x) => x - lse(s));
    const ks = [...Array(lab.K).keys()].filter((k) => Number.isFinite(lab.topLogprobs[n * lab.K + k]) && lab.topLogprobs[n * lab.K + k] > -9999);
    if (lab.mask[n] > 0 && ks.length) {
      const a = ks.map((k) => lab.topLogprobs[n * lab.K + k] / tau);
      const logPt = a.map((x) => x - lse(a));
      const ids = ks.map((k) => lab.topIds[n * lab.K + k]);
      let d = 0;
      if (o.divergence === 'forward-kl') {
        logPt.forEach((lp, j) => { d += Math.exp(lp) * (lp - ls[ids[j]]); });
      } else {
        const u = ids.map((id) => s[id]);
        const logQ = u.map((x) => x - lse(u));
        if (o.divergence === 'reverse-kl') logQ.forEach((lq, j) => { d += Math.exp(lq) * (lq - logPt[j]); });
        else {
          const M = logPt.map((lp, j) => o.beta * Math.exp(lp) + (1 - o.beta) * Math.exp(logQ[j]));
          logPt.forEach((lp, j) => { d += o.beta * Math.exp(lp) * (lp - Math.log(M[j])) + (1 - o.beta) * Math.exp(logQ[j]) * (logQ[j] - Math.log(M[j])); });
        }
      }
      kdSum += tau * tau * d; kdN++;
    }
    if (o.alpha > 0 && lab.targets[n] >= 0) { ceSum += lse(row) - row[lab.targets[n]]; ceN++; }
  });
  return (kdN ? (1 - o.alpha) * kdSum / kdN : 0) + (ceN ? o.alpha * ceSum / ceN : 0);
}

function rng(seed: number) { let s = seed >>> 0; return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32; }; }

function fixture(N: number, V: number, K: number, seed: number) {
  const r = rng(seed);
  const z = Array.from({ length: N }, () => Array.from({ length: V }, () => (r() - 0.5) * 6));
  const topIds = new Int32Array(N * K);
  const topLogprobs = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    const perm = [...Array(V).keys()].sort(() => r() - 0.5);
    for (let k = 0; k < K; k++) { topIds[n * K + k] = perm[k]; topLogprobs[n * K + k] = Math.log(0.5 / (k + 1)) - r(); }
  }
  topLogprobs[1 * K + K - 1] = -9999; // sentinel: ignored
  const mask = new Float32Array(N).fill(1);
  mask[2] = 0; // unlabelled position
  const targets = new Int32Array(N).map((_, n) => (n === 0 ? -1 : Math.floor(r() * V)));
  const labels: KdLabels = { N, K, topIds, topLogprobs, mask, targets };
  return { z, labels };
}

const cases: [Divergence, number, number][] = [];
for (const d of ['forward-kl', 'reverse-kl', 'jsd'] as Divergence[]) for (const T of [1, 2.5]) for (const a of [0, 0.3]) cases.push([d, T, a]);

describe('fused KD kernel', () => {
  it.each(cases)('%s T=%d alpha=%d: value matches the float64 reference and the gradient finite differences', (divergence, temperature, alpha) => {
    const N = 4, V = 9, K = 4;
    const { z, labels } = fixture(N, V, K, 7);
    const o = resolveLossOptions({ divergence, temperature, alpha, beta: 0.3 });
    const flat = Float32Array.from(z.flat());
    const grad = new Float32Array(N * V);
    const v = kdLossAndGrad(flat, V, labels, o, grad);
    const zf = z.map((row) => row.map((x) => Math.fround(x)));
    const ref = reference(zf, labels, o);
    expect(v.loss).toBeCloseTo(ref, 5);
    expect(v.labelled).toBe(3);
    expect(v.loss).toBeGreaterThan(0);
    const h = 1e-5;
    for (let n = 0; n < N; n++) for (let i = 0; i < V; i++) {
      const zp = zf.map((r) => r.slice()); zp[n][i] += h;
      const zm = zf.map((r) => r.slice()); zm[n][i] -= h;
      const fd = (reference(zp, labels, o) - reference(zm, labels, o)) / (2 * h);
      expect(Math.abs(grad[n * V + i] - fd)).toBeLessThan(2e-5);
    }
    // without a gradient buffer it returns the same value
    expect(kdLossAndGrad(flat, V, labels, o).loss).toBeCloseTo(v.loss, 10);
  });

  it('is zero when the student equals the tempered teacher on its support (forward KL, full mass on top-k)', () => {
    const V = 5, K = 5;
    const lt = [-0.2, -1.9, -3.1, -4.0, -5.5];
    const norm = Math.log(lt.reduce((s, x) => s + Math.exp(x), 0));
    const labels: KdLabels = { N: 1, K, topIds: Int32Array.from([0, 1, 2, 3, 4]), topLogprobs: Float32Array.from(lt.map((x) => x - norm)), mask: Float32Array.of(1), targets: Int32Array.of(-1) };
    const v = kdLossAndGrad(Float32Array.from(lt), V, labels, resolveLossOptions({ temperature: 2 }));
    expect(Math.abs(v.loss)).toBeLessThan(1e-6);
  });

  it('gives zero loss and zero gradient when nothing is labelled', () => {
    const { z, labels } = fixture(3, 6, 2, 1);
    labels.mask.fill(0);
    const grad = new Float32Array(18).fill(7);
    const v = kdLossAndGrad(Float32Array.from(z.flat()), 6, labels, resolveLossOptions({}), grad);
    expect(v.loss).toBe(0);
    expect(Number.isNaN(v.kd)).toBe(true);
    expect([...grad].every((g) => g === 0)).toBe(true);
  });

  it('rejects bad options with one clear error', () => {
    expect(() => resolveLossOptions({ temperature: 0 })).toThrow(KdError);
    expect(() => resolveLossOptions({ alpha: 1.5 })).toThrow(/alpha must be in \[0, 1\]/);
    expect(() => resolveLossOptions({ divergence: 'jsd', beta: 1 })).toThrow(/beta/);
    expect(() => resolveLossOptions({ divergence: 'kl' as Divergence })).toThrow(/divergence must be one of/);
  });
});

describe('headKdLoss (tied output head as a custom-gradient op)', () => {
  it('gradients w.r.t. hidden states and the embedding match finite differences', async () => {
    await tf.setBackend('cpu');
    const N = 3, V = 7, d = 4, K = 3;
    const { labels } = fixture(N, V, K, 3);
    const r = rng(11);
    const H = Array.from({ length: N * d }, () => r() - 0.5);
    const W = Array.from({ length: V * d }, () => r() - 0.5);
    const o = resolveLossOptions({ temperature: 2, alpha: 0.25 });
    const lossOf = (h: number[], w: number[]) => {
      const z = [...Array(N)].map((_, n) => [...Array(V)].map((_, v) => { let s = 0; for (let j = 0; j < d; j++) s += Math.fround(h[n * d + j]) * Math.fround(w[v * d + j]); return s; }));
      return reference(z, labels, o);
    };
    const before = tf.memory().numTensors;
    const hT = tf.tensor2d(H, [N, d]);
    const wT = tf.tensor2d(W, [V, d]);
    const { value, grads } = tf.valueAndGrads((h: tf.Tensor, w: tf.Tensor) => headKdLoss(h as tf.Tensor2D, w as tf.Tensor2D, labels, o))([hT, wT]);
    expect(value.dataSync()[0]).toBeCloseTo(lossOf(H, W), 4);
    const [gh, gw] = [grads[0].dataSync(), grads[1].dataSync()];
    const eps = 1e-4;
    for (let i = 0; i < N * d; i++) {
      const hp = H.slice(); hp[i] += eps; const hm = H.slice(); hm[i] -= eps;
      expect(Math.abs(gh[i] - (lossOf(hp, W) - lossOf(hm, W)) / (2 * eps))).toBeLessThan(1e-3);
    }
    for (let i = 0; i < V * d; i++) {
      const wp = W.slice(); wp[i] += eps; const wm = W.slice(); wm[i] -= eps;
      expect(Math.abs(gw[i] - (lossOf(H, wp) - lossOf(H, wm)) / (2 * eps))).toBeLessThan(1e-3);
    }
    tf.dispose([hT, wT, value, ...grads]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
