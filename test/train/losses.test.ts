import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { MISSING_MASS, kdLossAndGrad, headKdLoss, resolveLossOptions, type KdLabels, type KdLossOptions, type Divergence, type MissingMass } from '../../src/train/losses.js';
import { KdError } from '../../src/core/errors.js';

/** Independent float64 reference, written straight from the definitions (see kd-kernel.ts). */
function reference(z: number[][], lab: KdLabels, o: KdLossOptions): number {
  const tau = o.temperature;
  const lse = (xs: number[]) => { const m = Math.max(...xs); return m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0)); };
  const V = z[0].length;
  let kdSum = 0, kdN = 0, ceSum = 0, ceN = 0, fbSum = 0, fbN = 0;
  z.forEach((row, n) => {
    const s = row.map((x) => x / tau);
    const ls = s.map((x) => x - lse(s));
    const ks = [...Array(lab.K).keys()].filter((k) => Number.isFinite(lab.topLogprobs[n * lab.K + k]) && lab.topLogprobs[n * lab.K + k] > -9999);
    const t = lab.targets[n];
    if (lab.mask[n] > 0 && ks.length) {
      const ids = ks.map((k) => lab.topIds[n * lab.K + k]);
      const lt = ks.map((k) => lab.topLogprobs[n * lab.K + k]);
      // teacher classes: the k ids, plus the tail (mass 1 − Σ p, spread evenly over the other ids, then tempered)
      const R = 1 - lt.reduce((a, x) => a + Math.exp(x), 0);
      const withTail = o.missingMass === 'tail' && R > 1e-9;
      const a = lt.map((x) => x / tau);
      if (withTail) a.push(Math.log(R / (V - ks.length)) / tau + Math.log(V - ks.length));
      const logPt = a.map((x) => x - lse(a));
      // student classes: full-vocabulary q at the ids, plus the rest
      let logQ = ids.map((id) => ls[id]);
      if (o.missingMass === 'tail') {
        logQ.push(Math.log(1 - logQ.reduce((acc, x) => acc + Math.exp(x), 0)));
        if (!withTail) logPt.push(-Infinity);
      } else if (o.divergence !== 'forward-kl') {
        const u = ids.map((id) => s[id]);
        logQ = u.map((x) => x - lse(u));
      }
      let d = 0;
      logPt.forEach((lp, j) => {
        const p = Math.exp(lp), q = Math.exp(logQ[j]);
        if (o.divergence === 'forward-kl') d += p > 0 ? p * (lp - logQ[j]) : 0;
        else if (o.divergence === 'reverse-kl') d += q * (logQ[j] - Math.max(lp, Math.log(1e-12)));
        else {
          const m = o.beta * p + (1 - o.beta) * q;
          d += (p > 0 ? o.beta * p * (lp - Math.log(m)) : 0) + (1 - o.beta) * q * (logQ[j] - Math.log(m));
        }
      });
      if (o.missingMass === 'tail' && o.tailTarget > 0 && t >= 0 && !ids.includes(t)) d += o.tailTarget * (logQ[logQ.length - 1] - ls[t]);
      kdSum += tau * tau * d; kdN++;
    } else if (t >= 0 && o.unlabelledWeight > 0 && o.alpha < 1) {
      fbSum += lse(row) - row[t]; fbN++;
    }
    if (o.alpha > 0 && t >= 0) { ceSum += lse(row) - row[t]; ceN++; }
  });
  return (kdN + fbN ? (1 - o.alpha) * (kdSum + o.unlabelledWeight * fbSum) / (kdN + fbN) : 0) + (ceN ? o.alpha * ceSum / ceN : 0);
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

const cases: [Divergence, MissingMass, number, number][] = [];
for (const d of ['forward-kl', 'reverse-kl', 'jsd'] as Divergence[]) for (const m of MISSING_MASS) for (const T of [1, 2.5]) for (const a of [0, 0.3]) cases.push([d, m, T, a]);

describe('fused KD kernel', () => {
  it.each(cases)('%s, %s, T=%d alpha=%d: value matches the float64 reference and the gradient finite differences', (divergence, missingMass, temperature, alpha) => {
    const N = 4, V = 9, K = 4;
    const { z, labels } = fixture(N, V, K, 7);
    const o = resolveLossOptions({ divergence, temperature, alpha, beta: 0.3, missingMass, tailTarget: 0.6 });
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

  it('gives zero loss and zero gradient when nothing is labelled and nothing has a target', () => {
    const { z, labels } = fixture(3, 6, 2, 1);
    labels.mask.fill(0);
    labels.targets.fill(-1);
    const grad = new Float32Array(18).fill(7);
    const v = kdLossAndGrad(Float32Array.from(z.flat()), 6, labels, resolveLossOptions({}), grad);
    expect(v.loss).toBe(0);
    expect(Number.isNaN(v.kd)).toBe(true);
    expect([...grad].every((g) => g === 0)).toBe(true);
  });

  it('trains positions without a soft label on their hard target, whatever alpha (unlabelledWeight)', () => {
    const V = 6;
    const { z, labels } = fixture(3, V, 2, 1);
    labels.mask.fill(0);
    const flat = Float32Array.from(z.flat());
    const lse = (row: number[]) => { const m = Math.max(...row); return m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0)); };
    const ce = [1, 2].map((n) => lse(z[n].map(Math.fround)) - Math.fround(z[n][labels.targets[n]])); // row 0 has no target
    const grad = new Float32Array(3 * V);
    const v = kdLossAndGrad(flat, V, labels, resolveLossOptions({ alpha: 0, unlabelledWeight: 0.5 }), grad);
    expect(v.fallback).toBe(2);
    expect(v.loss).toBeCloseTo((0.5 * (ce[0] + ce[1])) / 2, 6);
    expect(grad[V + labels.targets[1]]).toBeLessThan(0); // pushed up
    expect(grad.slice(0, V).every((g) => g === 0)).toBe(true); // nothing to learn at row 0
    // unlabelledWeight 0 turns it off: the old behaviour
    const off = kdLossAndGrad(flat, V, labels, resolveLossOptions({ alpha: 0, unlabelledWeight: 0 }));
    expect(off.loss).toBe(0);
    expect(off.fallback).toBe(0);
  });

  it('keeps the teacher\'s missing mass: a student matching the teacher outside its top-k too has zero loss, one putting no mass there pays', () => {
    // teacher: top-2 holds 0.7; the other 0.3 spread evenly over the 4 other ids
    const V = 6, K = 2;
    const p = [0.5, 0.2, 0.075, 0.075, 0.075, 0.075];
    const labels: KdLabels = { N: 1, K, topIds: Int32Array.of(0, 1), topLogprobs: Float32Array.of(Math.log(0.5), Math.log(0.2)), mask: Float32Array.of(1), targets: Int32Array.of(-1) };
    for (const temperature of [1, 2]) {
      const o = resolveLossOptions({ temperature, alpha: 0 });
      const match = kdLossAndGrad(Float32Array.from(p.map(Math.log)), V, labels, o);
      expect(Math.abs(match.loss)).toBeLessThan(1e-6);
      // the renormalised student of the top-2 (no mass elsewhere) is what "renormalize" calls perfect
      const peaked = Float32Array.from([Math.log(5 / 7), Math.log(2 / 7), -30, -30, -30, -30]);
      expect(kdLossAndGrad(peaked, V, labels, o).loss).toBeGreaterThan(1);
      expect(Math.abs(kdLossAndGrad(peaked, V, labels, { ...o, missingMass: 'renormalize' }).loss)).toBeLessThan(1e-5);
    }
  });

  it('rejects bad options with one clear error', () => {
    expect(() => resolveLossOptions({ temperature: 0 })).toThrow(KdError);
    expect(() => resolveLossOptions({ alpha: 1.5 })).toThrow(/alpha must be in \[0, 1\]/);
    expect(() => resolveLossOptions({ divergence: 'jsd', beta: 1 })).toThrow(/beta/);
    expect(() => resolveLossOptions({ divergence: 'kl' as Divergence })).toThrow(/divergence must be one of/);
    expect(() => resolveLossOptions({ missingMass: 'drop' as MissingMass })).toThrow(/missingMass must be one of tail, renormalize/);
    expect(() => resolveLossOptions({ unlabelledWeight: -1 })).toThrow(/unlabelledWeight must be ≥ 0/);
    expect(() => resolveLossOptions({ tailTarget: Number.NaN })).toThrow(/tailTarget must be ≥ 0/);
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
