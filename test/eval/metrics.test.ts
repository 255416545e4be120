import { describe, expect, it } from 'vitest';
import { addPositions, emptySums, finishMetrics, kthLargest, percentile } from '../../src/eval/metrics.js';
import { kdLossAndGrad } from '../../src/train/kd-kernel.js';
import { Rng } from '../../src/core/rng.js';

const L = Math.log;
/** Three positions over V = 4 with K = 2, every figure worked out by hand in the comments. */
function handCase() {
  const ls = Float32Array.from([
    L(0.55), L(0.25), L(0.1), L(0.1), //   n=0: argmax 0, conf 0.55
    L(0.1), L(0.15), L(0.3), L(0.45), //   n=1: argmax 3, conf 0.45
    L(0.05), L(0.05), L(0.05), L(0.85), // n=2: argmax 3, conf 0.85 (confidences kept off bin edges: float32)
  ]);
  const labels = {
    K: 2,
    topIds: Int32Array.from([1, 0, 3, 2, 0, 0]),
    // n=1's second entry is the APIs' "outside the top-k" sentinel: ignored, so k(1) = 1
    topLogprobs: Float32Array.from([L(0.6), L(0.2), L(0.5), -9999, 0, 0]),
    mask: Float32Array.from([1, 1, 0]), // n=2 unlabelled: only its target counts
    targets: Int32Array.from([1, 2, 3]),
  };
  return { ls, labels };
}

describe('eval metrics', () => {
  it('match hand-computed values', () => {
    const { ls, labels } = handCase();
    const m = finishMetrics(addPositions(emptySums(10), ls, 4, labels));
    // n=0: pt = [0.6, 0.2] on ids [1, 0] and the tail 0.2; the student's [0.25, 0.55] and tail 0.2
    const kl0 = 0.6 * Math.log(0.6 / 0.25) + 0.2 * Math.log(0.2 / 0.55) + 0.2 * Math.log(0.2 / 0.2);
    // n=1: pt = [0.5] on id 3 and the tail 0.5; the student's 0.45 and tail 0.55
    const kl1 = 0.5 * Math.log(0.5 / 0.45) + 0.5 * Math.log(0.5 / 0.55);
    expect(m.labelled).toBe(2);
    expect(m.kl).toBeCloseTo((kl0 + kl1) / 2, 6);
    expect(m.agreement).toBe(0.5); // n=0: 0 ≠ 1; n=1: 3 = 3
    expect(m.recall).toBe(1); // n=0: {0,1} ∩ {1,0} = 2 of 2; n=1: {3} ∩ {3}
    expect(m.targeted).toBe(3);
    expect(m.ppl).toBeCloseTo(Math.exp((-Math.log(0.25) - Math.log(0.3) - Math.log(0.85)) / 3), 5);
    expect(m.accuracy).toBeCloseTo(1 / 3, 9); // only n=2's argmax is its target
    // bins 5, 4, 8 with (conf, correct) = (0.55, 0), (0.45, 0), (0.85, 1)
    expect(m.ece).toBeCloseTo((0.55 + 0.45 + 0.15) / 3, 6);
    expect(m.reliability.map((b) => b.count)).toEqual([0, 0, 0, 0, 1, 1, 0, 0, 1, 0]);
    expect(m.reliability[8]).toMatchObject({ lo: 0.8, hi: 0.9, accuracy: 1 });
    expect(m.reliability[8].confidence).toBeCloseTo(0.85, 6);
    expect(m.reliability[0].confidence).toBeNull();
    // teacher: only n=0's target (id 1, p 0.6) is a usable top-k entry; n=1's is the sentinel, n=2 unlabelled
    expect(m.teacherPpl).toBeCloseTo(1 / 0.6, 5);
    expect(m.teacherCoverage).toBeCloseTo(1 / 3, 9);
  });

  it('recall counts the overlap of the k-sets, k = the teacher\'s usable entries', () => {
    const ls = Float32Array.from([L(0.4), L(0.3), L(0.2), L(0.1)]);
    const labels = { K: 2, topIds: Int32Array.from([0, 3]), topLogprobs: Float32Array.from([-0.1, -3]), mask: Float32Array.from([1]), targets: Int32Array.from([-1]) };
    const m = finishMetrics(addPositions(emptySums(), ls, 4, labels));
    expect(m.recall).toBe(0.5); // student top-2 {0,1} vs teacher {0,3}
    expect(m.agreement).toBe(1);
    expect(m.targeted).toBe(0);
    expect(m.ppl).toBeNull();
    expect(m.ece).toBeNull();
    expect(m.teacherPpl).toBeNull();
  });

  it('KL equals kd-kernel\'s default forward KL at T = 1, the teacher\'s missing mass as a tail class', () => {
    const r = new Rng(7);
    const N = 6, V = 9, K = 4;
    const logits = Float32Array.from({ length: N * V }, () => r.normal() * 2);
    const ls = new Float32Array(N * V);
    for (let n = 0; n < N; n++) {
      const row = logits.subarray(n * V, (n + 1) * V);
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
      for (let v = 0; v < V; v++) ls[n * V + v] = row[v] - lse;
    }
    const topIds = new Int32Array(N * K), topLogprobs = new Float32Array(N * K);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) { topIds[n * K + k] = (n + 2 * k) % V; topLogprobs[n * K + k] = -0.5 - r.next() * 3; }
    const labels = { N, K, topIds, topLogprobs, mask: new Float32Array(N).fill(1), targets: new Int32Array(N).fill(-1) };
    const ref = kdLossAndGrad(logits, V, labels, { divergence: 'forward-kl', temperature: 1, alpha: 0, beta: 0.5, missingMass: 'tail', unlabelledWeight: 0, tailTarget: 0 });
    const renorm = kdLossAndGrad(logits, V, labels, { divergence: 'forward-kl', temperature: 1, alpha: 0, beta: 0.5, missingMass: 'renormalize', unlabelledWeight: 0, tailTarget: 0 });
    const m = finishMetrics(addPositions(emptySums(), ls, V, labels));
    expect(m.kl).toBeCloseTo(ref.kd, 5);
    expect(m.kl).toBeGreaterThan(0);
    expect(Math.abs(m.kl! - renorm.kd)).toBeGreaterThan(1e-3); // not the renormalised form
  });

  it('kthLargest and percentile', () => {
    expect(kthLargest([3, 9, 1, 7, 5], 1)).toBe(9);
    expect(kthLargest([3, 9, 1, 7, 5], 2)).toBe(7);
    expect(kthLargest([3, 9, 1, 7, 5], 5)).toBe(1);
    expect(kthLargest([2, 2, 2, 1], 3)).toBe(2);
    const r = new Rng(3);
    const a = Array.from({ length: 101 }, () => r.next());
    expect(kthLargest(a, 17)).toBe([...a].sort((x, y) => y - x)[16]);
    expect(percentile([4, 1, 3, 2], 0.5)).toBe(2.5);
    expect(percentile([10, 20], 0.95)).toBeCloseTo(19.5, 9);
    expect(percentile([], 0.5)).toBeNull();
  });

  it('rejects log-probs of the wrong size and targets outside the vocabulary', () => {
    const { ls, labels } = handCase();
    expect(() => addPositions(emptySums(), ls.subarray(0, 8), 4, labels)).toThrow(/expected N·V/);
    expect(() => addPositions(emptySums(), ls, 4, { ...labels, targets: Int32Array.from([9, 0, 0]) })).toThrow(/outside the student's vocabulary/);
    expect(() => emptySums(0)).toThrow(/bins/);
  });
});
